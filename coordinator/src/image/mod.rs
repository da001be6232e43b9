//! Cluster images on the bastion: safe layer unpacking into a merged
//! directory (`unpack`), and applying `Config` documents to a mounted image
//! (`config_apply`). Pure image semantics live in `ferry_shared::image`.

pub mod config_apply;
pub mod root_path;
pub mod unpack;
