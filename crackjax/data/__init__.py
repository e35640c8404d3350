"""Data: TFDS builders (MVTec-layout folders, synthetic concrete), robust decoding, the input pipeline."""
