"""stargan SDK: run exported StarGAN bundles without torch."""
