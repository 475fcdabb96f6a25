//! ICMP and ICMPv6 errors: matching the quoted header and building replies.
