//! Known `mv` models and their limits (reference §1.5), plus any a manifest
//! declares in a `models:` block.

use indexmap::IndexMap;

use crate::action::Action;
use crate::manifest::spec::ModelSpec;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub name: String,
    pub prompt_max: u32,
    pub tags_max: u32,
    pub vocal_gender: bool,
    pub variation_category: bool,
    /// False for models the create endpoint rejects (only sample and mashup take them).
    pub on_create: bool,
}

/// The models a pipeline may use.
#[derive(Debug, Clone)]
pub struct Models {
    models: Vec<Model>,
}

const BUILTIN: &[(&str, u32, u32, bool, bool, bool)] = &[
    // name, prompt_max, tags_max, vocal_gender, variation_category, on_create
    ("sonic-v3-5", 3000, 200, false, false, true),
    ("sonic-v4", 3000, 200, false, false, true),
    ("sonic-v4-5", 5000, 1000, true, false, true),
    ("sonic-v4-5-all", 5000, 1000, true, false, false),
    ("sonic-v4-5-plus", 5000, 1000, true, false, true),
    ("sonic-v5", 5000, 1000, true, true, true),
    ("sonic-v5-5", 5000, 1000, true, false, true),
    ("sonic-v6", 5000, 1000, true, false, true),
    ("sonic-v6-wild", 5000, 1000, true, false, true),
    ("sonic-v6-mini", 5000, 1000, true, false, true),
];

impl Models {
    /// The built-in table with `declared` models added (a declared name replaces a built-in one).
    pub fn with_declared(declared: &IndexMap<String, ModelSpec>) -> Models {
        let mut models: Vec<Model> = Vec::new();
        for &(name, prompt_max, tags_max, vocal_gender, variation_category, on_create) in BUILTIN {
            let model = Model {
                name: name.to_owned(),
                prompt_max,
                tags_max,
                vocal_gender,
                variation_category,
                on_create,
            };
            // Every sonic model is accepted in its `chirp-` spelling too, except the fast model.
            if on_create {
                let mut alias = model.clone();
                alias.name = name.replacen("sonic-", "chirp-", 1);
                models.push(alias);
            }
            models.push(model);
        }
        for (name, spec) in declared {
            models.retain(|m| &m.name != name);
            models.push(Model {
                name: name.clone(),
                prompt_max: spec.prompt_max,
                tags_max: spec.tags_max,
                vocal_gender: spec.vocal_gender,
                variation_category: spec.variation_category,
                on_create: true,
            });
        }
        Models { models }
    }

    pub fn get(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.name == name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.models.iter().map(|m| m.name.as_str())
    }
}

impl Model {
    /// Whether `action` may use this model.
    pub fn allowed_for(&self, action: Action) -> bool {
        self.on_create || matches!(action, Action::Sample | Action::Mashup)
    }
}
