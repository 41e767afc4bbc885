//! The household's data in bulk: backup, verify and restore ([`backup`]).

pub mod backup;
