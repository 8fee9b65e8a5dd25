"""A third-party codec for the plugin test: drops low bits, stores raw pixels + a header."""

import struct

import numpy as np

from harness.codec import Codec, fingerprint_of


class ToyQuantizer(Codec):
    name = "toy-quantizer"
    description = "keeps the top `quality` bits of every sample (a test plugin)"
    qualities = (2, 4, 6)
    quality_label = "bits kept per sample"

    def encode(self, image, quality):
        shift = 8 - int(quality)
        height, width, _ = image.shape
        kept = (image >> shift).astype(np.uint8)
        return struct.pack("<IIB", height, width, shift) + kept.tobytes()

    def decode(self, bitstream):
        height, width, shift = struct.unpack("<IIB", bitstream[:9])
        kept = np.frombuffer(bitstream[9:], dtype=np.uint8).reshape(height, width, 3)
        return ((kept.astype(np.uint16) << shift) + ((1 << shift) >> 1)).astype(np.uint8)

    def fingerprint(self):
        return fingerprint_of(self.name, "0.1")
