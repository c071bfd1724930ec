use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A ticket's trade; technicians list the trades they handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Water,
    Electric,
    Gas,
    Elevator,
    Hvac,
    DoorWindow,
    General,
    Other,
}

impl Category {
    pub const ALL: [Category; 8] = [
        Category::Water,
        Category::Electric,
        Category::Gas,
        Category::Elevator,
        Category::Hvac,
        Category::DoorWindow,
        Category::General,
        Category::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Water => "water",
            Category::Electric => "electric",
            Category::Gas => "gas",
            Category::Elevator => "elevator",
            Category::Hvac => "hvac",
            Category::DoorWindow => "door_window",
            Category::General => "general",
            Category::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn names() -> String {
        Self::ALL.map(Category::as_str).join(", ")
    }
}
