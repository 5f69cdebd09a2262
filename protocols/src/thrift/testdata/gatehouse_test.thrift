// Test IDL for the JSON mapping unit tests and the Python interop script (interop.py).
// Covers every type, nested containers, maps with non-string keys, unions, exceptions,
// inheritance and oneway.
namespace * gatehouse_test
namespace py gatehouse_test

typedef i64 Id

enum Color { RED = 1, GREEN, BLUE = 10 }

struct Point { 1: required i32 x, 2: required i32 y }

struct Inner { 1: optional string s, 2: optional list<i32> nums }

union Choice { 1: i32 num, 2: string text, 3: Point point }

struct All {
  1: optional bool b,
  2: optional byte y,
  3: optional i16 s16,
  4: optional i32 s32,
  5: optional i64 s64,
  6: optional double d,
  7: optional string str,
  8: optional binary bin,
  9: optional Color color,
  10: optional list<list<i32>> nested,
  11: optional set<string> tags,
  12: optional map<i32, string> by_int,
  13: optional map<Point, string> by_point,
  14: optional map<string, Inner> by_name,
  15: optional Choice choice,
  16: optional map<Color, bool> by_color,
  17: optional map<i64, double> by_long,
  18: optional list<bool> flags,
  19: optional map<bool, binary> by_bool,
  20: optional All child,
}

exception NotFound { 1: string what, 2: Id id }
exception Denied { 1: string why }

service Base { void ping() }

service Test extends Base {
  All echo(1: All a),
  Point move(1: Point p, 2: i32 dx, 3: optional i32 dy, 4: Color c),
  string find(1: Id id) throws (1: NotFound nf, 2: Denied denied),
  oneway void fire(1: string msg),
  Id count(1: list<Point> pts),
  Choice pick(1: required Choice c),
}
