"""The format layer: raw formats, dataset sources, denoising, normalisation, splits, the HDF5 store."""
