//! The chat page and its scripts, embedded in the binary at build time
//! (`include_str!`): the demo serves them with no files beside it and no
//! CDN.

/// One embedded file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asset {
    /// `Content-Type` header value.
    pub content_type: &'static str,
    /// The file's text.
    pub body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The embedded file served at `path`, if any.
///
/// # Example
///
/// ```
/// let page = freeim_demo::assets::find("/").unwrap();
/// assert!(page.body.contains("freeim-client.js"));
/// assert!(freeim_demo::assets::find("/secret").is_none());
/// ```
pub fn find(path: &str) -> Option<Asset> {
    let (content_type, body) = match path {
        "/" | "/index.html" => (HTML, include_str!("../static/index.html")),
        "/app.js" => (JS, include_str!("../static/app.js")),
        "/style.css" => (CSS, include_str!("../static/style.css")),
        "/freeim-client.js" => (JS, include_str!("../static/freeim-client.js")),
        _ => return None,
    };
    Some(Asset { content_type, body })
}
