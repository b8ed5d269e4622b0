//! The generated config every UCL bench parses (shared by the benches and by
//! `examples/gen-jails.rs`, which writes it for benches/ucl2json-vs-ucl_tool.sh).

use std::fmt::Write;

/// A config like the examples in jrun's docs: each jail has an address, a dependency,
/// a port forward, a mount and a service with a healthcheck.
pub fn generate(jails: usize) -> String {
    let mut s = String::with_capacity(jails * 400);
    s.push_str("# generated for the ucl benchmark\nbase {\n  mount { src { host = \"/usr/src\"; target = \"/usr/src\"; } }\n}\n\n");
    for i in 0..jails {
        let dep = if i == 0 { 0 } else { i - 1 };
        let _ = write!(
            s,
            r#"jail "app-{i:05}" {{
  release = "14.2-RELEASE";
  ip = "10.17.{}.{}";
  depends = ["app-{dep:05}"];
  forward {{
    http {{ host = {}; jail = 8080; }}
  }}
  mount {{
    data {{ host = "/srv/app-{i:05}/data"; jail = "/var/db/app"; }}
  }}
  exec {{
    server {{
      cmd = "/usr/local/bin/app --listen 0.0.0.0:8080";
      healthcheck {{
        test = "fetch -qo /dev/null http://127.0.0.1:8080/health";
        interval = 10s; timeout = 3s; retries = 3;
      }}
    }}
  }}
}}
"#,
            89 + i / 250,
            2 + i % 250,
            10_000 + i % 50_000,
        );
    }
    s
}
