//! Cluster images on the bastion: safe layer unpacking into a merged
//! directory (`unpack`), and applying `Config` documents to a mounted image
//! (`config_apply`), rendering its `*.tmpl` files (`render`). Pure image
//! semantics live in `ferry_shared::image`.

pub mod atomic;
pub mod config_apply;
pub mod render;
pub mod root_path;
pub mod unpack;
