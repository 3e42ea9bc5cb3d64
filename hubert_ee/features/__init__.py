"""Frame features (MFCC, model layers) and the sharded memory-mappable store."""
