//! Cluster image semantics as sealos defines them (pure, no IO).
//!
//! - [`labels`]: the image type (`sealos.io.type` / `apps.sealos.io/type`:
//!   rootfs | patch | application, missing ⇒ application), distribution,
//!   schema version, `version` (Kubernetes), `vip`, `image` (lvscare), and the
//!   script hooks (`check`, `init`, `clean`, `init-registry`,
//!   `clean-registry`, `init-cri`, `clean-cri`; default `<name>.sh`).
//! - [`subst`]: `$var`, `${var}`, `$(var)` substitution in label values.
//! - [`stack`]: a stack of mounted images (rootfs, then patches, then
//!   applications) with merged labels and env (later images override).
//! - [`env`]: env precedence image ENV < Clusterfile `spec.env` < CLI `-e`,
//!   host env per host; `SEALOS_SYS*` keys from users dropped with a warning;
//!   the `SEALOS_SYS_*` built-ins.
//! - [`expand`]: `$(VAR)` expansion of CMD/ENTRYPOINT items (sealos' rules).
//! - [`guest`]: what each image runs in the guest phase, where, in order.

pub mod env;
pub mod expand;
pub mod guest;
pub mod labels;
pub mod stack;
pub mod subst;

pub use env::{EnvLayers, EnvSource, EnvWarning, SysEnv, parse_env_list, run_mode};
pub use expand::expand;
pub use guest::{GuestImage, GuestTarget, shell_line};
pub use labels::{Distribution, Hook, ImageMeta, ImageType};
pub use stack::{ImageConfig, ImageStack, StackError};
pub use subst::substitute;
