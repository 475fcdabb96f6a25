//! Tunnel encapsulation (IPIP, GUE, GRE).
