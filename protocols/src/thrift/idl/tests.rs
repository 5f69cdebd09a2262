//! Resolution tests: includes, qualified names, typedefs, enums, inheritance, and errors that
//! name the file and line.

use super::*;

fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

const SHARED: &str = r#"
namespace * shared
typedef i64 Id
enum Level { LOW, MID = 10, HIGH }
struct Owner { 1: required Id id, 2: optional string name }
exception NotFound { 1: string what }
service Base { string ping(1: string msg) }
"#;

const MAIN: &str = r#"
include "common/shared.thrift"
typedef shared.Id UserId
typedef list<UserId> UserIds
struct User { 1: required UserId id, 2: shared.Level level, 3: map<string, shared.Owner> owners }
union Choice { 1: i32 num, 2: string text }
service Users extends shared.Base {
  User get(1: UserId id) throws (1: shared.NotFound nf),
  oneway void touch(1: UserIds ids),
  void nothing()
}
"#;

fn build_ok() -> Arc<Idl> {
    Idl::build(
        &files(&[
            ("api/main.thrift", MAIN),
            ("api/common/shared.thrift", SHARED),
        ]),
        "api/main.thrift",
        &IdlLimits::default(),
    )
    .unwrap()
}

#[test]
fn resolves_includes_typedefs_enums_and_inheritance() {
    let idl = build_ok();
    let svc = idl.service("Users").unwrap();
    assert_eq!(svc.name, "main.Users");
    assert!(idl.service("main.Users").is_some());
    // Base is unique across files, so its plain name works too.
    assert_eq!(idl.service("Base").unwrap().name, "shared.Base");

    let get = svc.method("get").unwrap();
    assert!(!get.oneway);
    let args = idl.struct_def(get.args);
    assert_eq!(args.kind, StructKind::Args);
    assert_eq!(args.fields[0].ty, Ty::I64);
    let Some(Ty::Struct(user)) = &get.returns else {
        panic!("{:?}", get.returns)
    };
    let user = idl.struct_def(*user);
    assert_eq!(user.name, "main.User");
    let (_, level) = user.field_by_name("level").unwrap();
    let Ty::Enum(level) = level.ty else { panic!() };
    assert_eq!(
        idl.enum_def(level).values,
        vec![("LOW".into(), 0), ("MID".into(), 10), ("HIGH".into(), 11)]
    );
    let (_, owners) = user.field_by_id(3).unwrap();
    let Ty::Map(k, v) = &owners.ty else { panic!() };
    assert_eq!(**k, Ty::String);
    assert!(matches!(**v, Ty::Struct(id) if idl.struct_def(id).name == "shared.Owner"));

    let result = idl.struct_def(get.result);
    assert_eq!(
        result
            .fields
            .iter()
            .map(|f| (f.id, f.name.as_str()))
            .collect::<Vec<_>>(),
        [(0, "success"), (1, "nf")]
    );

    let touch = svc.method("touch").unwrap();
    assert!(touch.oneway);
    assert_eq!(
        idl.struct_def(touch.args).fields[0].ty,
        Ty::List(Box::new(Ty::I64))
    );
    assert!(svc.method("nothing").unwrap().returns.is_none());
    // Inherited from shared.Base.
    let ping = svc.method("ping").unwrap();
    assert_eq!(ping.declared_in, "shared.Base");
    assert_eq!(svc.methods().count(), 4);
    assert_eq!(
        idl.struct_def(idl.find_struct("main.Choice").unwrap()).kind,
        StructKind::Union
    );
}

fn build_err(list: &[(&str, &str)]) -> IdlError {
    Idl::build(&files(list), list[0].0, &IdlLimits::default()).unwrap_err()
}

#[test]
fn errors_name_file_line_and_problem() {
    let e = build_err(&[("a.thrift", "struct A {\n  1: i32 x\n  2: Missing y\n}")]);
    assert_eq!(
        e,
        IdlError {
            file: "a.thrift".into(),
            line: 3,
            message: "unknown type `Missing`".into()
        }
    );
    assert_eq!(e.to_string(), "a.thrift:3: unknown type `Missing`");

    let e = build_err(&[("a.thrift", "\ninclude \"nope.thrift\"\n")]);
    assert_eq!(
        (e.line, e.message.as_str()),
        (2, "included file \"nope.thrift\" was not uploaded")
    );

    let e = build_err(&[
        ("a.thrift", "include \"b.thrift\""),
        ("b.thrift", "struct B {\n 1: i32 x,\n 1: i32 y }"),
    ]);
    assert_eq!((e.file.as_str(), e.line), ("b.thrift", 3));
    assert!(e.message.contains("used twice"));

    let e = build_err(&[("a.thrift", "typedef B A\ntypedef A B\nstruct S { 1: A a }")]);
    assert!(e.message.contains("cyclic"), "{e}");

    let e = build_err(&[("a.thrift", "service A extends B {}\nservice B extends A {}")]);
    assert!(e.message.contains("cyclic"), "{e}");

    let e = build_err(&[(
        "a.thrift",
        "struct S {}\nservice A {\n void f() throws (1: S s)\n}",
    )]);
    assert_eq!(
        (e.line, e.message.as_str()),
        (3, "`s` in throws is not an exception")
    );

    let e = build_err(&[("a.thrift", "service A {\n oneway i32 f()\n}")]);
    assert_eq!(e.line, 2);

    let e = build_err(&[("a.thrift", "struct S {}\nenum S { X }")]);
    assert_eq!((e.line, e.message.as_str()), (2, "`S` is defined twice"));

    let e = build_err(&[("a.thrift", "enum E { A = 3000000000 }")]);
    assert!(e.message.contains("out of i32 range"));

    let e = build_err(&[("a.thrift", "service S {}\nstruct T { 1: S s }")]);
    assert_eq!(e.message, "`S` is not a type");

    let e = build_err(&[("a.thrift", "struct T {\n 1: i32 x\n 2: string x }")]);
    assert_eq!(e.line, 3);
}

#[test]
fn caps_are_enforced() {
    let list = files(&[
        ("a.thrift", "include \"b.thrift\"\ninclude \"b.thrift\""),
        ("b.thrift", ""),
    ]);
    let tight = IdlLimits {
        max_includes: 1,
        ..IdlLimits::default()
    };
    assert!(Idl::build(&list, "a.thrift", &tight)
        .unwrap_err()
        .message
        .contains("includes"));
    let tight = IdlLimits {
        max_files: 1,
        ..IdlLimits::default()
    };
    assert!(Idl::build(&list, "a.thrift", &tight)
        .unwrap_err()
        .message
        .contains("files"));
    let tight = IdlLimits {
        max_total_bytes: 10,
        ..IdlLimits::default()
    };
    assert!(Idl::build(&list, "a.thrift", &tight)
        .unwrap_err()
        .message
        .contains("bytes"));
    let tight = IdlLimits {
        max_definitions: 1,
        ..IdlLimits::default()
    };
    let list = files(&[("a.thrift", "struct A {}\nstruct B {}")]);
    assert!(Idl::build(&list, "a.thrift", &tight)
        .unwrap_err()
        .message
        .contains("definitions"));
    assert!(Idl::build(&list, "zzz.thrift", &IdlLimits::default()).is_err());
}

#[test]
fn includes_resolve_relative_then_by_unique_base_name() {
    let list = files(&[
        (
            "x/a.thrift",
            "include \"../y/b.thrift\"\nstruct A { 1: b.B b }",
        ),
        ("y/b.thrift", "include \"c.thrift\"\nstruct B { 1: c.C c }"),
        ("elsewhere/c.thrift", "struct C {}"),
    ]);
    let idl = Idl::build(&list, "x/a.thrift", &IdlLimits::default()).unwrap();
    assert!(idl.find_struct("c.C").is_some());
}

#[test]
fn services_with_the_same_name_need_qualification() {
    let list = files(&[
        ("a.thrift", "include \"b.thrift\"\nservice S {}"),
        ("b.thrift", "service S {}\nservice T {}"),
    ]);
    let idl = Idl::build(&list, "a.thrift", &IdlLimits::default()).unwrap();
    assert_eq!(idl.service("S").unwrap().name, "a.S");
    assert_eq!(idl.service("b.S").unwrap().name, "b.S");
    assert_eq!(idl.service("T").unwrap().name, "b.T");
}
