"""`python -m stargan_train`: the `stargan-train` CLI (also what `torchrun -m stargan_train train ...` runs).

Usage: torchrun --nproc_per_node 2 -m stargan_train train --dataset toyfaces --data-dir data/toy
"""

from stargan_train.cli import main

if __name__ == "__main__":
    main()
