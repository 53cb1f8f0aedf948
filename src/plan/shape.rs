//! Types of values that references point at, and walking a reference's path
//! through them (`steps.song.outputs.clips[1].clip_id` → a generated clip id).

use std::fmt;

use crate::expr::{Located, Segment};

/// Where a clip came from: decides task types and which actions accept it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Upload,
    Generated,
    Unknown,
}

/// How many elements a list has, as far as the plan can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Known exactly (a literal list).
    Exact(u64),
    /// Known only at run time; this is the documented expectation.
    Expected(u64),
    /// Known only at run time, and never more than this (a filtered list).
    AtMost(u64),
}

impl Count {
    /// The count, or the most it can be.
    pub fn value(self) -> u64 {
        match self {
            Count::Exact(n) | Count::Expected(n) | Count::AtMost(n) => n,
        }
    }

    pub fn is_expected(self) -> bool {
        matches!(self, Count::Expected(_))
    }

    pub fn is_at_most(self) -> bool {
        matches!(self, Count::AtMost(_))
    }

    pub fn is_exact(self) -> bool {
        matches!(self, Count::Exact(_))
    }

    /// The count of `self` groups of `other` each: exact if both are, a
    /// bound if either is, else an expectation.
    pub fn times(self, other: Count) -> Count {
        let n = self.value().saturating_mul(other.value());
        match (self, other) {
            (Count::Exact(_), Count::Exact(_)) => Count::Exact(n),
            (Count::AtMost(_), _) | (_, Count::AtMost(_)) => Count::AtMost(n),
            _ => Count::Expected(n),
        }
    }
}

/// The type of a value.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    /// Not known before run time (a matrix cell, an input without a default).
    Any,
    Str,
    Num,
    Bool,
    /// A clip id.
    Clip(Origin),
    List(Box<Ty>, Count),
    /// An object with named fields; `name` says what it is in messages.
    Obj(&'static str, Vec<(&'static str, Ty)>),
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Any => f.write_str("a value"),
            Ty::Str => f.write_str("a string"),
            Ty::Num => f.write_str("a number"),
            Ty::Bool => f.write_str("a boolean"),
            Ty::Clip(_) => f.write_str("a clip id"),
            Ty::List(elem, _) => write!(f, "a list of {}", plural(elem)),
            Ty::Obj(name, _) => write!(f, "{} object", article(name)),
        }
    }
}

fn plural(ty: &Ty) -> String {
    match ty {
        Ty::Obj(name, _) => format!("{name} objects"),
        Ty::Clip(_) => "clip ids".to_owned(),
        Ty::Str => "strings".to_owned(),
        Ty::Num => "numbers".to_owned(),
        other => other.to_string(),
    }
}

fn article(name: &str) -> String {
    if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {name}")
    } else {
        format!("a {name}")
    }
}

impl Ty {
    /// The type of a literal JSON value (inputs and literal lists).
    pub fn of_json(value: &serde_json::Value) -> Ty {
        match value {
            serde_json::Value::Null => Ty::Any,
            serde_json::Value::Bool(_) => Ty::Bool,
            serde_json::Value::Number(_) => Ty::Num,
            serde_json::Value::String(_) => Ty::Str,
            serde_json::Value::Array(items) => {
                let elem = items.first().map_or(Ty::Any, Ty::of_json);
                Ty::List(Box::new(elem), Count::Exact(items.len() as u64))
            }
            serde_json::Value::Object(_) => Ty::Any,
        }
    }

    pub fn field_names(&self) -> Vec<&'static str> {
        match self {
            Ty::Obj(_, fields) => fields.iter().map(|(n, _)| *n).collect(),
            _ => Vec::new(),
        }
    }
}

/// Why a path does not fit a type.
#[derive(Debug, Clone, PartialEq)]
pub enum WalkError {
    /// `.name` on an object without that field.
    UnknownField { at: usize, name: String, parent: Ty },
    /// `.name` or `[i]` on something that has no fields or elements.
    NotIndexable { at: usize, parent: Ty },
    /// `.name` on a list: an index is needed first.
    FieldOnList { at: usize, name: String, parent: Ty },
    /// `[i]` past the end of a list of known length.
    OutOfBounds { at: usize, index: usize, len: u64 },
}

/// Follows `path` from `ty`; `Any` absorbs every access. After `[*]` the
/// rest of the path applies to each element, giving a list of as many.
pub fn walk(ty: &Ty, path: &[Located]) -> Result<Ty, WalkError> {
    walk_from(ty, path, 0)
}

/// `walk` of `path`, whose first segment is number `offset` of the whole path.
fn walk_from(ty: &Ty, path: &[Located], offset: usize) -> Result<Ty, WalkError> {
    let mut current = ty.clone();
    for (i, located) in path.iter().enumerate() {
        let at = offset + i;
        current = match (&current, &located.segment) {
            (Ty::Any, _) => Ty::Any,
            (Ty::List(elem, count), Segment::Each) => {
                let each = walk_from(elem, &path[i + 1..], at + 1)?;
                return Ok(Ty::List(Box::new(each), *count));
            }
            (Ty::Obj(_, fields), Segment::Field(name)) => {
                match fields.iter().find(|(n, _)| n == name) {
                    Some((_, t)) => t.clone(),
                    None => {
                        return Err(WalkError::UnknownField {
                            at,
                            name: name.clone(),
                            parent: current.clone(),
                        });
                    }
                }
            }
            (Ty::List(elem, count), Segment::Index(i)) => {
                if let Count::Exact(len) = count
                    && *i as u64 >= *len
                {
                    return Err(WalkError::OutOfBounds {
                        at,
                        index: *i,
                        len: *len,
                    });
                }
                (**elem).clone()
            }
            (Ty::List(..), Segment::Field(name)) => {
                return Err(WalkError::FieldOnList {
                    at,
                    name: name.clone(),
                    parent: current.clone(),
                });
            }
            _ => {
                return Err(WalkError::NotIndexable {
                    at,
                    parent: current.clone(),
                });
            }
        };
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::parse_template;

    fn path(text: &str) -> Vec<Located> {
        parse_template(&format!("${{{{ item{text} }}}}"))
            .unwrap()
            .whole_reference()
            .unwrap()
            .path
            .clone()
    }

    #[test]
    fn walks_fields_and_indexes() {
        let clip = Ty::Obj(
            "clip",
            vec![("clip_id", Ty::Clip(Origin::Generated)), ("title", Ty::Str)],
        );
        let outputs = Ty::Obj(
            "outputs",
            vec![("clips", Ty::List(Box::new(clip), Count::Expected(2)))],
        );
        assert_eq!(
            walk(&outputs, &path(".clips[1].clip_id")),
            Ok(Ty::Clip(Origin::Generated))
        );
        assert!(matches!(
            walk(&outputs, &path(".clips.clip_id")),
            Err(WalkError::FieldOnList { at: 1, .. })
        ));
        assert!(matches!(
            walk(&outputs, &path(".clip")),
            Err(WalkError::UnknownField { at: 0, .. })
        ));
        assert!(matches!(
            walk(&outputs, &path(".clips[0].title[0]")),
            Err(WalkError::NotIndexable { at: 3, .. })
        ));
        let lit = Ty::List(Box::new(Ty::Str), Count::Exact(2));
        assert!(matches!(
            walk(&lit, &path("[2]")),
            Err(WalkError::OutOfBounds {
                index: 2,
                len: 2,
                ..
            })
        ));
        assert_eq!(walk(&Ty::Any, &path(".x[3].y")), Ok(Ty::Any));
        assert_eq!(
            walk(&outputs, &path(".clips[*].clip_id")),
            Ok(Ty::List(
                Box::new(Ty::Clip(Origin::Generated)),
                Count::Expected(2)
            ))
        );
        assert!(matches!(
            walk(&outputs, &path(".clips[*].nope")),
            Err(WalkError::UnknownField { at: 2, .. })
        ));
        assert!(matches!(
            walk(&outputs, &path("[*]")),
            Err(WalkError::NotIndexable { at: 0, .. })
        ));
    }
}
