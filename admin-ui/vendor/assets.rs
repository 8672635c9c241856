// Written by admin-ui/vendor.sh (@socket.io/admin-ui 0.5.1, @mdi/font 7.4.47); do not edit.
&[
    Asset { path: "css/app.6e3b9661.css", mime: "text/css; charset=utf-8", body: include_bytes!("css/app.6e3b9661.css") },
    Asset { path: "css/chunk-vendors.9f55d012.css", mime: "text/css; charset=utf-8", body: include_bytes!("css/chunk-vendors.9f55d012.css") },
    Asset { path: "favicon.png", mime: "image/png", body: include_bytes!("favicon.png") },
    Asset { path: "img/logo-dark.3727fec5.svg", mime: "image/svg+xml", body: include_bytes!("img/logo-dark.3727fec5.svg") },
    Asset { path: "img/logo-light.73342c25.svg", mime: "image/svg+xml", body: include_bytes!("img/logo-light.73342c25.svg") },
    Asset { path: "index.html", mime: "text/html; charset=utf-8", body: include_bytes!("index.html") },
    Asset { path: "js/app.0d7d7845.js", mime: "text/javascript; charset=utf-8", body: include_bytes!("js/app.0d7d7845.js") },
    Asset { path: "js/chunk-vendors.934c03ff.js", mime: "text/javascript; charset=utf-8", body: include_bytes!("js/chunk-vendors.934c03ff.js") },
    Asset { path: "mdi/css/materialdesignicons.min.css", mime: "text/css; charset=utf-8", body: include_bytes!("mdi/css/materialdesignicons.min.css") },
    Asset { path: "mdi/fonts/materialdesignicons-webfont.woff", mime: "font/woff", body: include_bytes!("mdi/fonts/materialdesignicons-webfont.woff") },
    Asset { path: "mdi/fonts/materialdesignicons-webfont.woff2", mime: "font/woff2", body: include_bytes!("mdi/fonts/materialdesignicons-webfont.woff2") },
]
