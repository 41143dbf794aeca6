"""Downstream protocols (SPEC 6): linear evaluation, semi-supervised and full fine-tuning, k-NN
retrieval with a FAISS gallery. Each command's core lives here; `skelctl/cli` only parses options.
"""
