"""`python -m stargan_sdk.cli`: the same as the `stargan` command."""

from stargan_sdk.cli.stargan import main

main()
