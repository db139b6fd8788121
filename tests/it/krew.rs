//! krew round trip (being written).
