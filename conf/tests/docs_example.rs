//! The example in docs/config.md parses, validates and routes the way the text says, so the
//! reference cannot drift from the code.

use conf::{Config, RouteMatch, Router};

const DOC: &str = include_str!("../../docs/config.md");

fn example() -> Config {
    let start = DOC
        .find("## Example")
        .expect("docs/config.md has an Example section");
    let block = &DOC[start..];
    let body = block
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the Example section has a toml block");
    Config::from_toml_str(body).unwrap_or_else(|e| panic!("example does not parse: {e:?}"))
}

fn route_of(c: &Config, r: &Router, host: &str, method: &str, path: &str) -> (String, RouteMatch) {
    let mut m = RouteMatch::default();
    assert!(r.find(host.as_bytes(), method.as_bytes(), path.as_bytes(), &mut m));
    (c.routes[m.route].id.clone(), m)
}

#[test]
fn documented_example_is_valid_and_routes_as_described() {
    let c = example();
    assert_eq!(c.validate(), vec![]);
    let r = Router::build(&c.routes);

    let (id, m) = route_of(&c, &r, "api.example.com", "GET", "/users/7");
    assert_eq!(id, "user-read");
    assert_eq!(r.param_name(m.route, m.params[0].0), "id");
    assert_eq!(m.param_value(b"/users/7", 0), Some(&b"7"[..]));
    assert_eq!(
        route_of(&c, &r, "api.example.com", "PUT", "/users/7").0,
        "user-write"
    );
    assert_eq!(
        route_of(&c, &r, "api.example.com", "POST", "/users/7").0,
        "fallback"
    );

    let path = b"/assets/a.png";
    let (id, m) = route_of(&c, &r, "img.cdn.example.com", "GET", "/assets/a.png");
    assert_eq!(id, "assets");
    assert!(c.routes[m.route].strip_prefix);
    assert_eq!(&path[m.prefix_len..], b"/a.png");
}

#[test]
fn documented_check_output_lines_are_real() {
    let c = Config::from_toml_str(
        r#"
        [limits]
        max_headers = 0
        [[upstreams]]
        id = "u"
        nodes = [{ addr = "127.0.0.1:1" }, { addr = "1.2.3" }]
        [[routes]]
        id = "api"
        hosts = ["api.example.com"]
        paths = ["/users/{id}"]
        methods = ["GET"]
        upstream = "u"
        [[routes]]
        id = "api"
        paths = ["/b"]
        upstream = "u"
        [[routes]]
        id = "c"
        paths = ["/c"]
        upstream = "x"
        [[routes]]
        id = "d"
        hosts = ["api.example.com"]
        paths = ["/users/{name}"]
        methods = ["GET"]
        upstream = "u"
        "#,
    )
    .unwrap();
    let want: Vec<String> = DOC
        .split("```text\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("docs/config.md shows check output")
        .lines()
        .map(str::to_string)
        .collect();
    let got: Vec<String> = c.validate().iter().map(ToString::to_string).collect();
    assert_eq!(got, want);
}
