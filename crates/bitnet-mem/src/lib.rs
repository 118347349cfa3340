//! bitnet-mem library.
