//! The page, hand-written and embedded in the binary: nothing is fetched
//! from anywhere but the dashboard itself.

pub const INDEX_HTML: &str = include_str!("assets/index.html");
pub const APP_JS: &str = include_str!("assets/app.js");
pub const STYLE_CSS: &str = include_str!("assets/style.css");
