//! jrun's native runtime: jails as Linux network namespaces, nftables, unbound and Yggdrasil.
