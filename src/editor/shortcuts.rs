//! The editor's keyboard shortcuts, in one table: the browser's key handler looks a key up
//! here, the help overlay lists the table, and buttons name their key from it.

use super::ui::Tool;
use crate::geometry::Plane;

/// What a key does in the editor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Tool(Tool),
    FillBetween,
    /// Applies the previewed 3-D step (only while one is shown).
    ApplyPreview,
    /// Cancels the preview and closes the help.
    Dismiss,
    /// The n-th label of the case (1-based).
    Label(usize),
    SmallerBrush,
    LargerBrush,
    NextSlice,
    PreviousSlice,
    Plane(Plane),
    ToggleLayout,
    ToggleOutline,
    ResetView,
    Undo,
    Redo,
    Save,
    ToggleHelp,
}

/// A key as `KeyboardEvent.key` names it (letters in either case), with Ctrl (or ⌘) held or
/// not, and Shift when it matters.
#[derive(Clone, Copy, Debug)]
pub struct Binding {
    pub key: &'static str,
    pub ctrl: bool,
    pub shift: Option<bool>,
    pub action: Action,
}

/// One row of the help: the keys or gestures as shown, what they do, and the key bindings
/// among them (gestures of the pointer and wheel are handled by the views).
pub struct Shortcut {
    pub keys: &'static str,
    pub does: &'static str,
    pub bindings: &'static [Binding],
}

const fn key(key: &'static str, action: Action) -> Binding {
    Binding { key, ctrl: false, shift: None, action }
}

const fn ctrl(key: &'static str, shift: Option<bool>, action: Action) -> Binding {
    Binding { key, ctrl: true, shift, action }
}

/// Every shortcut, in the order the help lists them (ITK-SNAP / OHIF style).
pub const SHORTCUTS: &[Shortcut] = &[
    Shortcut {
        keys: "B / E / T / F",
        does: "brush, eraser, threshold brush, 2-D fill",
        bindings: &[
            key("B", Action::Tool(Tool::Brush)),
            key("E", Action::Tool(Tool::Eraser)),
            key("T", Action::Tool(Tool::ThresholdBrush)),
            key("F", Action::Tool(Tool::Fill)),
        ],
    },
    Shortcut {
        keys: "G",
        does: "region growing from a click (previewed)",
        bindings: &[key("G", Action::Tool(Tool::Grow))],
    },
    Shortcut {
        keys: "X",
        does: "crosshair: click or drag to move all views to a point",
        bindings: &[key("X", Action::Tool(Tool::Crosshair))],
    },
    Shortcut {
        keys: "I",
        does: "fill between slices along the active view (previewed)",
        bindings: &[key("I", Action::FillBetween)],
    },
    Shortcut {
        keys: "Enter / Escape",
        does: "apply / cancel the preview; Escape also closes this help",
        bindings: &[key("Enter", Action::ApplyPreview), key("Escape", Action::Dismiss)],
    },
    Shortcut {
        keys: "1 – 9",
        does: "choose label",
        bindings: &[
            key("1", Action::Label(1)),
            key("2", Action::Label(2)),
            key("3", Action::Label(3)),
            key("4", Action::Label(4)),
            key("5", Action::Label(5)),
            key("6", Action::Label(6)),
            key("7", Action::Label(7)),
            key("8", Action::Label(8)),
            key("9", Action::Label(9)),
        ],
    },
    Shortcut {
        keys: "[ / ]",
        does: "smaller / larger brush",
        bindings: &[key("[", Action::SmallerBrush), key("]", Action::LargerBrush)],
    },
    Shortcut {
        keys: "↑ ↓, Page Up / Down, wheel",
        does: "next / previous slice of the active view",
        bindings: &[
            key("ArrowUp", Action::NextSlice),
            key("PageUp", Action::NextSlice),
            key("ArrowDown", Action::PreviousSlice),
            key("PageDown", Action::PreviousSlice),
        ],
    },
    Shortcut {
        keys: "A / C / S",
        does: "make the axial, coronal or sagittal view active",
        bindings: &[
            key("A", Action::Plane(Plane::Axial)),
            key("C", Action::Plane(Plane::Coronal)),
            key("S", Action::Plane(Plane::Sagittal)),
        ],
    },
    Shortcut {
        keys: "M, double-click",
        does: "maximise the active view / back to three views",
        bindings: &[key("M", Action::ToggleLayout)],
    },
    Shortcut { keys: "Ctrl + wheel", does: "zoom", bindings: &[] },
    Shortcut { keys: "Shift + drag, middle drag", does: "pan", bindings: &[] },
    Shortcut { keys: "Right drag", does: "window / level (shared by all views)", bindings: &[] },
    Shortcut { keys: "O", does: "outline / filled mask", bindings: &[key("O", Action::ToggleOutline)] },
    Shortcut { keys: "R", does: "reset zoom and pan", bindings: &[key("R", Action::ResetView)] },
    Shortcut { keys: "Ctrl + Z", does: "undo", bindings: &[ctrl("Z", Some(false), Action::Undo)] },
    Shortcut {
        keys: "Ctrl + Y, Ctrl + Shift + Z",
        does: "redo",
        bindings: &[ctrl("Y", None, Action::Redo), ctrl("Z", Some(true), Action::Redo)],
    },
    Shortcut { keys: "Ctrl + S", does: "save", bindings: &[ctrl("S", None, Action::Save)] },
    Shortcut { keys: "?", does: "show / hide this help", bindings: &[key("?", Action::ToggleHelp)] },
];

/// The action of a key press (`key` as `KeyboardEvent.key` names it), if it has one.
pub fn action_for(key: &str, ctrl: bool, shift: bool) -> Option<Action> {
    SHORTCUTS.iter().flat_map(|shortcut| shortcut.bindings).find_map(|binding| {
        let matches = binding.key.eq_ignore_ascii_case(key)
            && binding.ctrl == ctrl
            && binding.shift.is_none_or(|wanted| wanted == shift);
        matches.then_some(binding.action)
    })
}

/// The key of `action` as a button's title names it (`M`), or `""` if it has none.
pub fn key_of(action: Action) -> &'static str {
    SHORTCUTS
        .iter()
        .flat_map(|shortcut| shortcut.bindings)
        .find(|binding| binding.action == action && !binding.ctrl)
        .map_or("", |binding| binding.key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_their_actions_with_and_without_modifiers() {
        assert_eq!(action_for("b", false, false), Some(Action::Tool(Tool::Brush)));
        assert_eq!(action_for("B", false, true), Some(Action::Tool(Tool::Brush)));
        assert_eq!(action_for("s", false, false), Some(Action::Plane(Plane::Sagittal)));
        assert_eq!(action_for("s", true, false), Some(Action::Save));
        assert_eq!(action_for("z", true, false), Some(Action::Undo));
        assert_eq!(action_for("Z", true, true), Some(Action::Redo));
        assert_eq!(action_for("y", true, false), Some(Action::Redo));
        assert_eq!(action_for("3", false, false), Some(Action::Label(3)));
        assert_eq!(action_for("PageDown", false, false), Some(Action::PreviousSlice));
        assert_eq!(action_for("z", false, false), None);
        assert_eq!(action_for("q", true, false), None);
    }

    #[test]
    fn every_binding_is_shown_in_its_row_and_bound_once() {
        let mut seen = Vec::new();
        for shortcut in SHORTCUTS {
            for binding in shortcut.bindings {
                let shown = match binding.key {
                    "ArrowUp" => "↑",
                    "ArrowDown" => "↓",
                    "PageUp" | "PageDown" => "Page",
                    digit if digit.len() == 1 && digit.as_bytes()[0].is_ascii_digit() => "1 – 9",
                    key => key,
                };
                assert!(shortcut.keys.contains(shown), "{:?} is not shown in {:?}", binding.key, shortcut.keys);
                let press = (binding.key.to_ascii_lowercase(), binding.ctrl, binding.shift);
                assert!(!seen.contains(&press), "{press:?} is bound twice");
                seen.push(press);
            }
        }
    }

    #[test]
    fn every_tool_has_a_key() {
        for (tool, _) in Tool::ALL {
            assert!(!key_of(Action::Tool(tool)).is_empty(), "{tool:?} has no key");
        }
    }
}
