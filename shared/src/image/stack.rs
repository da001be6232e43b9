//! A stack of mounted images: rootfs first, then patches, then applications
//! (each group in the order given). Labels and env are merged in that order,
//! later images overriding earlier ones, so a patch can override hooks.

use std::collections::BTreeMap;

use super::env::parse_env_list;
use super::labels::{ImageMeta, ImageType, TYPE_LABELS};

/// What ferry needs of an image's OCI config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// The reference the user gave (`labring/kubernetes:v1.27.7`).
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// OCI `Env`: `KEY=VALUE` strings.
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
}

impl ImageConfig {
    pub fn image_type(&self) -> ImageType {
        ImageType::from_label(
            TYPE_LABELS
                .iter()
                .find_map(|k| self.labels.get(*k))
                .map(String::as_str),
        )
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StackError {
    #[error("more than one rootfs image in the stack: {first} and {second}")]
    MultipleRootfs { first: String, second: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageStack {
    images: Vec<ImageConfig>,
}

impl ImageStack {
    pub fn new(images: Vec<ImageConfig>) -> Result<Self, StackError> {
        let mut ordered = images;
        ordered.sort_by_key(ImageConfig::image_type);
        let mut rootfs = ordered
            .iter()
            .filter(|i| i.image_type() == ImageType::Rootfs);
        if let (Some(a), Some(b)) = (rootfs.next(), rootfs.next()) {
            return Err(StackError::MultipleRootfs {
                first: a.name.clone(),
                second: b.name.clone(),
            });
        }
        Ok(Self { images: ordered })
    }

    /// The images in merge order.
    pub fn images(&self) -> &[ImageConfig] {
        &self.images
    }

    pub fn rootfs(&self) -> Option<&ImageConfig> {
        self.images
            .iter()
            .find(|i| i.image_type() == ImageType::Rootfs)
    }

    /// Labels of all images, later ones overriding.
    pub fn merged_labels(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for image in &self.images {
            out.extend(image.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        out
    }

    /// Image ENV of all images, later ones overriding.
    pub fn merged_env(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for image in &self.images {
            out.extend(parse_env_list(&image.env).0);
        }
        out
    }

    /// Meta of the merged labels; the type is the rootfs' when there is one.
    pub fn meta(&self, env: &BTreeMap<String, String>) -> ImageMeta {
        let mut meta = ImageMeta::from_labels(&self.merged_labels(), env);
        if self.rootfs().is_some() {
            meta.image_type = ImageType::Rootfs;
        }
        meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(name: &str, ty: Option<&str>, labels: &[(&str, &str)], env: &[&str]) -> ImageConfig {
        let mut l: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        if let Some(t) = ty {
            l.insert("sealos.io.type".to_owned(), t.to_owned());
        }
        ImageConfig {
            name: name.to_owned(),
            labels: l,
            env: env.iter().map(|s| (*s).to_owned()).collect(),
            ..ImageConfig::default()
        }
    }

    #[test]
    fn orders_and_merges() {
        let stack = ImageStack::new(vec![
            img("calico", None, &[("init", "app.sh")], &["a=app"]),
            img(
                "patch",
                Some("patch"),
                &[("check", "mycheck.sh")],
                &["a=patch", "p=1"],
            ),
            img(
                "k8s",
                Some("rootfs"),
                &[("check", "check.sh $registryData"), ("init", "init.sh")],
                &["a=root", "registryData=/r"],
            ),
        ])
        .unwrap();
        let names: Vec<&str> = stack.images().iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["k8s", "patch", "calico"]);
        let labels = stack.merged_labels();
        assert_eq!(labels["check"], "mycheck.sh");
        assert_eq!(labels["init"], "app.sh");
        let env = stack.merged_env();
        assert_eq!(env["a"], "app");
        assert_eq!(env["p"], "1");
        assert_eq!(env["registryData"], "/r");
        assert_eq!(stack.meta(&env).image_type, ImageType::Rootfs);
        assert_eq!(stack.rootfs().map(|i| i.name.as_str()), Some("k8s"));
    }

    #[test]
    fn two_rootfs_rejected() {
        let err = ImageStack::new(vec![
            img("a", Some("rootfs"), &[], &[]),
            img("b", Some("rootfs"), &[], &[]),
        ]);
        assert!(matches!(err, Err(StackError::MultipleRootfs { .. })));
    }

    #[test]
    fn apps_only_stack() {
        let stack = ImageStack::new(vec![img("helm", None, &[], &[])]).unwrap();
        assert!(stack.rootfs().is_none());
        assert_eq!(
            stack.meta(&BTreeMap::new()).image_type,
            ImageType::Application
        );
    }
}
