"""Data: every rule about text. Vocabulary, span corruption, question files and birth-place examples, the sharded loader, and the synthetic world."""
