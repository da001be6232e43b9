//! OCI images on the bastion: digests/descriptors/manifests (`types`),
//! image references (`reference`), and the local content-addressed image
//! store (`store`, an OCI image layout shared by pull, build and load).

pub mod archive;
pub mod reference;
pub mod registry;
pub mod store;
pub mod types;

pub use reference::Reference;
pub use store::{Store, StoreError};
pub use types::{Descriptor, Digest, Platform};
