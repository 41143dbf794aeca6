"""Files and layouts: raw formats, denoising, normalisation, splits, the HDF5 store, synth."""
