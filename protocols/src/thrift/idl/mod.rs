//! Thrift IDL loaded at run time: a `services` resource carries one or more .thrift files,
//! which [`Idl::build`] parses and resolves into an immutable, `Arc`-shared model the JSON
//! mapper walks on every request. Building runs off the hot path (config validation, on the
//! control thread); lookups afterwards are hash-map gets by `&str`, with no allocation.
//!
//! Resolution: includes (among the uploaded files only), `file.Type` names, typedef chains,
//! enum implicit values, structs/unions/exceptions, services with `extends` (methods of the
//! bases are flattened into each service), oneway. Each method gets two synthetic structs,
//! `Service.method_args` and `Service.method_result` (field 0 `success`, then the declared
//! exceptions), so arguments and results go through the same struct code as user types.
//!
//! Errors name the file, the line and the problem ([`IdlError`]).

mod lexer;
mod parser;
mod resolve;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::codec::TType;

/// Caps on what one `services` resource may upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdlLimits {
    /// Most files in one set. Default 64.
    pub max_files: usize,
    /// Largest total size of all files. Default 4 MiB.
    pub max_total_bytes: usize,
    /// Most `include` statements over all files. Default 256.
    pub max_includes: usize,
    /// Most definitions (types, constants, services) over all files. Default 20,000.
    pub max_definitions: usize,
}

impl Default for IdlLimits {
    fn default() -> Self {
        Self {
            max_files: 64,
            max_total_bytes: 4 << 20,
            max_includes: 256,
            max_definitions: 20_000,
        }
    }
}

/// A bad IDL: which file, which line (0 when the problem is not on a line, e.g. a size cap),
/// what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdlError {
    pub file: String,
    pub line: u32,
    pub message: String,
}

impl fmt::Display for IdlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

impl std::error::Error for IdlError {}

/// Index of a struct, union, exception or synthetic args/result struct in an [`Idl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StructId(pub(crate) u32);

/// Index of an enum in an [`Idl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnumId(pub(crate) u32);

/// A resolved type: typedefs are gone, names point at definitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ty {
    Bool,
    Byte,
    I16,
    I32,
    I64,
    Double,
    /// UTF-8 text.
    String,
    /// Raw bytes (base64 in JSON).
    Binary,
    List(Box<Ty>),
    Set(Box<Ty>),
    Map(Box<Ty>, Box<Ty>),
    Struct(StructId),
    Enum(EnumId),
}

impl Ty {
    /// The wire type that carries this type.
    pub fn ttype(&self) -> TType {
        match self {
            Ty::Bool => TType::Bool,
            Ty::Byte => TType::Byte,
            Ty::I16 => TType::I16,
            Ty::I32 | Ty::Enum(_) => TType::I32,
            Ty::I64 => TType::I64,
            Ty::Double => TType::Double,
            Ty::String | Ty::Binary => TType::String,
            Ty::List(_) => TType::List,
            Ty::Set(_) => TType::Set,
            Ty::Map(..) => TType::Map,
            Ty::Struct(_) => TType::Struct,
        }
    }
}

/// How a field was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requiredness {
    Required,
    Optional,
    /// Neither keyword ("default requiredness").
    Default,
}

/// What a struct definition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StructKind {
    Struct,
    /// Exactly one field set.
    Union,
    Exception,
    /// The synthetic arguments struct of a method.
    Args,
    /// The synthetic result struct of a method (field 0 `success`, then exceptions).
    Result,
}

#[derive(Debug, Clone)]
pub struct Field {
    pub id: i16,
    pub name: String,
    pub ty: Ty,
    pub req: Requiredness,
}

#[derive(Debug, Clone)]
pub struct StructDef {
    /// Qualified name: `file.Name` (`file` is the file name without directory and `.thrift`);
    /// synthetic structs are `file.Service.method_args` / `_result`.
    pub name: String,
    pub kind: StructKind,
    pub fields: Vec<Field>,
    by_name: HashMap<String, usize>,
}

impl StructDef {
    pub(crate) fn new(name: String, kind: StructKind, fields: Vec<Field>) -> Self {
        let by_name = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();
        Self {
            name,
            kind,
            fields,
            by_name,
        }
    }

    pub(crate) fn set_fields(&mut self, fields: Vec<Field>) {
        *self = Self::new(std::mem::take(&mut self.name), self.kind, fields);
    }

    /// The field called `name` and its index in `fields`.
    pub fn field_by_name(&self, name: &str) -> Option<(usize, &Field)> {
        let i = *self.by_name.get(name)?;
        Some((i, self.fields.get(i)?))
    }

    /// The field with wire id `id` and its index. Structs are small; a scan beats a hash here.
    pub fn field_by_id(&self, id: i16) -> Option<(usize, &Field)> {
        self.fields.iter().enumerate().find(|(_, f)| f.id == id)
    }
}

#[derive(Debug, Clone)]
pub struct EnumDef {
    /// Qualified name `file.Name`.
    pub name: String,
    /// Names and values in declaration order (implicit values filled in).
    pub values: Vec<(String, i32)>,
}

impl EnumDef {
    pub fn value_of(&self, name: &str) -> Option<i32> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    pub fn name_of(&self, value: i32) -> Option<&str> {
        self.values
            .iter()
            .find(|(_, v)| *v == value)
            .map(|(n, _)| n.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Method {
    pub name: String,
    pub oneway: bool,
    /// The arguments struct (kind `Args`).
    pub args: StructId,
    /// The result struct (kind `Result`): field 0 is the return value unless `void`.
    pub result: StructId,
    /// `None` for `void`.
    pub returns: Option<Ty>,
    /// Qualified name of the service that declares it (a base, for inherited methods).
    pub declared_in: String,
}

#[derive(Debug, Clone)]
pub struct Service {
    /// Qualified name `file.Service`.
    pub name: String,
    methods: HashMap<String, Method>,
}

impl Service {
    /// A method of this service or of the services it extends.
    pub fn method(&self, name: &str) -> Option<&Method> {
        self.methods.get(name)
    }

    /// All methods, inherited ones included (no particular order).
    pub fn methods(&self) -> impl Iterator<Item = &Method> {
        self.methods.values()
    }
}

/// A resolved IDL set. Immutable once built; share it with `Arc`.
#[derive(Debug)]
pub struct Idl {
    structs: Vec<StructDef>,
    enums: Vec<EnumDef>,
    services: Vec<Service>,
    service_names: HashMap<String, usize>,
}

impl Idl {
    /// Parses and resolves `files` (name, text). Services are found by qualified name
    /// (`file.Service`); those of `main`, and any whose plain name is unique, also by plain name.
    pub fn build(
        files: &[(String, String)],
        main: &str,
        limits: &IdlLimits,
    ) -> Result<Arc<Idl>, IdlError> {
        resolve::build(files, main, limits).map(Arc::new)
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.get(*self.service_names.get(name)?)
    }

    /// Every service, by qualified name.
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.iter()
    }

    /// Panics only on an id from another `Idl`, which is a programming error.
    pub fn struct_def(&self, id: StructId) -> &StructDef {
        &self.structs[id.0 as usize]
    }

    pub fn enum_def(&self, id: EnumId) -> &EnumDef {
        &self.enums[id.0 as usize]
    }

    /// A struct, union or exception by qualified name (`file.Name`); a scan, for tests and tools.
    pub fn find_struct(&self, name: &str) -> Option<StructId> {
        self.structs
            .iter()
            .position(|s| s.name == name)
            .map(|i| StructId(i as u32))
    }
}

#[cfg(test)]
mod tests;
