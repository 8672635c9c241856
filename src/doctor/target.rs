//! What `--url`, `--namespace`, `--path` and `--origin` name, read the way socket.io-client
//! reads `io(URL, {path})`: scheme, host and port say where to connect, the URL's path is the
//! namespace, and the Engine.IO path is separate (`/socket.io/` unless the app sets `path`).

use reqwest::Url;

use super::DoctorArgs;

#[derive(Clone, Debug)]
pub struct Target {
    /// `--url` as given (shown in the report).
    pub url: String,
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// `http(s)://host:port`, for the HTTP routes.
    pub base: String,
    /// Engine.IO path with its trailing slash.
    pub path: String,
    pub namespace: String,
    /// The page's origin (`Origin` on every request).
    pub origin: String,
    /// Whether the page is on the server's own origin (then the browser needs no CORS).
    pub same_origin: bool,
}

impl Target {
    pub fn parse(args: &DoctorArgs) -> Result<Target, String> {
        let url = Url::parse(args.url.trim()).map_err(|e| {
            format!(
                "--url {:?}: {e}; expected the URL the app passes to io(), e.g. https://chat.example.com/im",
                args.url
            )
        })?;
        let tls = match url.scheme() {
            "http" | "ws" => false,
            "https" | "wss" => true,
            other => {
                return Err(format!(
                    "--url: scheme {other:?} is not one a Socket.IO client uses (http, https, ws, wss)"
                ));
            }
        };
        let host = url
            .host_str()
            .ok_or_else(|| format!("--url {:?} has no host", args.url))?
            .to_string();
        let port = url.port().unwrap_or(if tls { 443 } else { 80 });
        let scheme = if tls { "https" } else { "http" };
        let host_port = match url.port() {
            Some(p) => format!("{}:{p}", bracket(&host)),
            None => bracket(&host),
        };
        let base = format!("{scheme}://{host_port}");
        let namespace = match &args.namespace {
            Some(ns) => format!("/{}", ns.trim().trim_matches('/')),
            None => match url.path().trim_end_matches('/') {
                "" => "/im".to_string(),
                p => p.to_string(),
            },
        };
        let path = format!("/{}/", args.path.trim().trim_matches('/')).replace("//", "/");
        let origin = match &args.origin {
            Some(o) => {
                let o = o.trim().trim_end_matches('/');
                let parsed = Url::parse(o).map_err(|e| {
                    format!("--origin {o:?}: {e}; expected e.g. https://app.example.com")
                })?;
                parsed.origin().ascii_serialization()
            }
            None => base.clone(),
        };
        let same_origin = origin == base
            || Url::parse(&base).is_ok_and(|b| b.origin().ascii_serialization() == origin);
        Ok(Target {
            url: args.url.trim().to_string(),
            tls,
            host,
            port,
            base,
            path,
            namespace,
            origin,
            same_origin,
        })
    }

    pub fn http(&self, route: &str) -> String {
        format!("{}{route}", self.base)
    }

    /// The Engine.IO URL with `query` (already encoded).
    pub fn eio(&self, query: &str) -> String {
        format!("{}{}?EIO=4&{query}", self.base, self.path)
    }

    pub fn ws_url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        let rest = self.base.split_once("://").map(|(_, r)| r).unwrap_or("");
        format!("{scheme}://{rest}{}?EIO=4&transport=websocket", self.path)
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: DoctorArgs,
    }

    fn parse(argv: &[&str]) -> Result<Target, String> {
        let mut all = vec!["t"];
        all.extend_from_slice(argv);
        Target::parse(&T::parse_from(all).a)
    }

    #[test]
    fn url_path_is_the_namespace_and_origin_defaults_to_the_url() {
        let t = parse(&["--url", "https://chat.example.com/im"]).unwrap();
        assert_eq!(t.base, "https://chat.example.com");
        assert_eq!((t.port, t.tls), (443, true));
        assert_eq!(t.namespace, "/im");
        assert_eq!(t.path, "/socket.io/");
        assert_eq!(t.origin, "https://chat.example.com");
        assert!(t.same_origin);
        assert_eq!(
            t.ws_url(),
            "wss://chat.example.com/socket.io/?EIO=4&transport=websocket"
        );
        let t = parse(&[
            "--url",
            "http://127.0.0.1:3000",
            "--origin",
            "https://app.example.com/",
            "--path",
            "api/socket.io",
        ])
        .unwrap();
        assert_eq!(t.namespace, "/im");
        assert_eq!(t.path, "/api/socket.io/");
        assert_eq!(t.origin, "https://app.example.com");
        assert!(!t.same_origin);
        assert!(parse(&["--url", "ftp://x"]).unwrap_err().contains("scheme"));
    }
}
