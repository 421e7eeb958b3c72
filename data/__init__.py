"""Data: vocabulary, span corruption, birth-place examples, the sharded loader, and the synthetic world."""
