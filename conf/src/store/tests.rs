//! The start-up rule: seeding an empty store, the store winning afterwards, notes about file
//! resources that are not served, and a store that no longer fits the file.

use super::dir::tests::Tmp;
use super::*;

const FILE: &str = "[[upstreams]]\nid = \"u\"\nnodes = [{ addr = \"127.0.0.1:9\" }]\n\
                    [[routes]]\nid = \"r\"\npaths = [\"/a\"]\nupstream = \"u\"\n";

fn file(extra: &str) -> Config {
    Config::from_toml_str(&format!("{FILE}{extra}")).unwrap()
}

/// What the business layer does at start, minus the derived tables.
fn build(c: Config, _version: u64) -> Result<Config, Vec<ConfigError>> {
    let errors = c.validate();
    if errors.is_empty() {
        Ok(c)
    } else {
        Err(errors)
    }
}

#[test]
fn an_empty_store_is_seeded_from_the_file_as_version_1() {
    let t = Tmp::new("seed");
    let s = DirStore::open(&t.0, 1 << 20).unwrap();
    let j = join(file(""), &s, build).unwrap();
    assert!(j.seeded && j.notes.is_empty());
    assert_eq!(j.version, 1);
    assert_eq!(j.built, file(""));
    let saved = s.load().unwrap().unwrap();
    assert_eq!(saved.version, 1);
    assert_eq!(saved.resources, kinds::resources_of(&file("")));
}

#[test]
fn afterwards_the_store_wins_and_file_edits_are_noted() {
    let t = Tmp::new("wins");
    let s = DirStore::open(&t.0, 1 << 20).unwrap();
    join(file(""), &s, build).unwrap();
    // An admin change: route r moves to /b, a route r2 is added.
    let mut res = kinds::resources_of(&file(""));
    kinds::upsert(
        &mut res,
        "routes",
        serde_json::json!({"id": "r", "paths": ["/b"], "upstream": "u"}),
    );
    kinds::upsert(
        &mut res,
        "routes",
        serde_json::json!({"id": "r2", "paths": ["/c"], "upstream": "u"}),
    );
    s.save(&Saved {
        version: 7,
        resources: res,
    })
    .unwrap();
    // The file meanwhile gained route r3 and a new [limits] value.
    let edited = file(
        "[[routes]]\nid = \"r3\"\npaths = [\"/d\"]\nupstream = \"u\"\n\
         [limits]\nmax_headers = 50\n",
    );
    let j = join(edited, &s, build).unwrap();
    assert!(!j.seeded);
    assert_eq!(j.version, 7);
    let paths: Vec<(&str, &str)> = j
        .built
        .routes
        .iter()
        .map(|r| (r.id.as_str(), r.paths[0].as_str()))
        .collect();
    assert_eq!(paths, vec![("r", "/b"), ("r2", "/c")]);
    assert_eq!(j.built.limits.max_headers, 50, "tables come from the file");
    assert_eq!(j.notes.len(), 2, "{:?}", j.notes);
    assert!(j.notes[0].contains("routes/r differs"), "{:?}", j.notes);
    assert!(j.notes[1].contains("routes/r3 is absent"), "{:?}", j.notes);
}

#[test]
fn a_store_that_no_longer_fits_the_file_is_refused_with_paths() {
    let t = Tmp::new("misfit");
    let s = DirStore::open(&t.0, 1 << 20).unwrap();
    let mut res = kinds::resources_of(&file(""));
    kinds::upsert(
        &mut res,
        "routes",
        serde_json::json!({"id": "big", "paths": ["/z"], "upstream": "u",
                           "max_body_bytes": 2_199_023_255_552u64}),
    );
    s.save(&Saved {
        version: 2,
        resources: res,
    })
    .unwrap();
    let Err(JoinError::Stored(errs)) = join(file(""), &s, build) else {
        panic!("accepted");
    };
    assert!(
        errs.iter().any(|e| e.path == "routes[1].max_body_bytes"),
        "{errs:?}"
    );
}

#[test]
fn a_file_that_does_not_build_leaves_the_store_empty() {
    let t = Tmp::new("badfile");
    let s = DirStore::open(&t.0, 1 << 20).unwrap();
    let refuse = |_: Config, _: u64| -> Result<(), Vec<ConfigError>> {
        Err(vec![ConfigError::new(
            "modules[0].rate",
            "must be positive",
        )])
    };
    let Err(JoinError::File(errs)) = join(file(""), &s, refuse) else {
        panic!("accepted");
    };
    assert_eq!(errs[0].path, "modules[0].rate");
    assert_eq!(s.load().unwrap(), None, "nothing seeded");
    assert!(join(file(""), &s, build).unwrap().seeded);
}

#[test]
fn etcd_is_refused_clearly_for_now() {
    let c = Config::from_toml_str("[store]\nkind = \"etcd\"\nendpoints = [\"h:1\"]\n").unwrap();
    let Err(e) = open(&c) else {
        panic!("opened");
    };
    assert!(e.0.contains("etcd"), "{e}");
}
