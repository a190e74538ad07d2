//! The viewer and mask editor's controls and its three views. The server renders them; in the browser
//! `crate::editor::browser` downloads the volumes, draws, and carries out the commands the
//! controls send through [`ViewerUi`].

use leptos::prelude::*;

use crate::api::{CaseArtifacts, LabelDef, ModelState};
use crate::display::format_time;
use crate::editor::overlays::OverlayKind;
use crate::editor::render::{OverlayStyle, Window};
use crate::editor::shortcuts::{self, Action, SHORTCUTS};
use crate::editor::tools::EditableArea;
use crate::editor::ui::{Command, Crosshair, Layout, SaveStatus, Tool, ViewerUi, PERCENTILE_PRESETS};
use crate::editor::Smoothing;
use crate::geometry::Plane;

/// The case's viewer. `compare_with` (from the page's address, as the evaluation's links set
/// it) turns on the comparison with that role's prediction, looking first at `focus_label`.
#[component]
pub fn CaseViewer(
    case: CaseArtifacts,
    compare_with: Option<ModelState>,
    focus_label: Option<u8>,
    /// The case's workflow and review panel, beside the label list: the page supplies it, as
    /// it talks to the server.
    review: fn(ViewerUi) -> AnyView,
) -> impl IntoView {
    let ui = ViewerUi::new(case);
    if let Some(role) = compare_with {
        // Predictions come first among the overlays, in the case's order.
        ui.disagreement.set(ui.case.with_value(|case| case.predictions.iter().position(|p| p.role == role)));
        ui.focus_label.set(focus_label);
    }
    let views = NodeRef::<leptos::html::Div>::new();
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let owner = Owner::current().expect("components run under a reactive owner");
        views.on_load(move |views| {
            let canvas = |plane: Plane| {
                views
                    .query_selector(&format!("canvas[data-plane={}]", plane.name()))
                    .ok()
                    .flatten()
                    .and_then(|element| element.dyn_into::<web_sys::HtmlCanvasElement>().ok())
                    .expect("the viewer renders one canvas per plane")
            };
            crate::editor::browser::start(ui, Plane::ALL.map(canvas), owner);
        });
    }
    let labels = ui.case.with_value(|case| case.labels.clone());
    let modality_presets = Window::CT_PRESETS;
    view! {
        <section class="viewer" data-testid="viewer">
            <div class="toolbar">
                <div class="group">
                    <button
                        class:active=move || ui.layout.get() == Layout::Three
                        on:click=move |_| ui.layout.set(Layout::Three)
                        title=format!("Axial, coronal and sagittal side by side ({})", shortcuts::key_of(Action::ToggleLayout))
                    >
                        "3 views"
                    </button>
                    <button
                        class:active=move || ui.layout.get() == Layout::One
                        on:click=move |_| ui.layout.set(Layout::One)
                        title=format!("The active view alone ({})", shortcuts::key_of(Action::ToggleLayout))
                    >
                        "1 view"
                    </button>
                </div>
                <div class="group planes">
                    {Plane::ALL
                        .into_iter()
                        .map(|plane| {
                            view! {
                                <button
                                    class:active=move || ui.plane.get() == plane
                                    on:click=move |_| ui.plane.set(plane)
                                >
                                    {plane.name()}
                                </button>
                            }
                        })
                        .collect_view()}
                </div>
                <div class="group tools">
                    {Tool::ALL
                        .into_iter()
                        .map(|(tool, name)| {
                            view! {
                                <button
                                    class:active=move || ui.tool.get() == tool
                                    title=format!("{name} ({})", shortcuts::key_of(Action::Tool(tool)))
                                    on:click=move |_| ui.tool.set(tool)
                                >
                                    {name}
                                </button>
                            }
                        })
                        .collect_view()}
                </div>
                <label class="group">
                    "Brush " {move || format!("{:.0} mm", ui.radius_mm.get())}
                    <input
                        type="range" min="0.5" max="30" step="0.5" aria-label="Brush radius"
                        prop:value=move || ui.radius_mm.get().to_string()
                        on:input=move |ev| if let Ok(v) = event_target_value(&ev).parse() { ui.radius_mm.set(v) }
                    />
                </label>
                <div class="group">
                    <button on:click=move |_| ui.send(Command::Undo) prop:disabled=move || !ui.can_undo.get()>"Undo"</button>
                    <button on:click=move |_| ui.send(Command::Redo) prop:disabled=move || !ui.can_redo.get()>"Redo"</button>
                    <button on:click=move |_| ui.help.update(|open| *open = !*open) title=format!("Keyboard shortcuts ({})", shortcuts::key_of(Action::ToggleHelp))>"?"</button>
                </div>
            </div>
            <div class="toolbar">
                <div class="group palette" role="radiogroup" aria-label="Label">
                    {labels
                        .iter()
                        .map(|label| {
                            let value = label.value;
                            view! {
                                <button
                                    class="label"
                                    class:active=move || ui.label.get() == value
                                    style=format!("--label-color: {}", label.color)
                                    on:click=move |_| ui.label.set(value)
                                    data-label=value
                                >
                                    {format!("{} {}", label.value, label.name)}
                                </button>
                            }
                        })
                        .collect_view()}
                </div>
                <label class="group">
                    "Opacity"
                    <input
                        type="range" min="0" max="1" step="0.05" aria-label="Mask opacity"
                        prop:value=move || ui.opacity.get().to_string()
                        on:input=move |ev| if let Ok(v) = event_target_value(&ev).parse() { ui.opacity.set(v) }
                    />
                </label>
                <label class="group">
                    <input type="checkbox" prop:checked=move || ui.outline.get() on:change=move |ev| ui.outline.set(event_target_checked(&ev))/>
                    "Outline"
                </label>
                <label class="group">
                    "Window"
                    <select
                        aria-label="Window preset"
                        on:change=move |ev| {
                            let choice = event_target_value(&ev);
                            if let Some((_, window)) = modality_presets.iter().find(|(name, _)| *name == choice) {
                                ui.window.set(*window);
                            } else if let Some((_, low, high)) = PERCENTILE_PRESETS.iter().find(|(name, ..)| *name == choice) {
                                ui.send(Command::WindowPercentiles(*low, *high));
                            }
                        }
                    >
                        <option value="">{move || { let w = ui.window.get(); format!("L {:.0} W {:.0}", w.center, w.width) }}</option>
                        <optgroup label="Any modality (MR, PET, …)">
                            {PERCENTILE_PRESETS.iter().map(|(name, ..)| view! { <option>{*name}</option> }).collect_view()}
                        </optgroup>
                        <optgroup label="CT (Hounsfield units)">
                            {modality_presets.iter().map(|(name, _)| view! { <option>{*name}</option> }).collect_view()}
                        </optgroup>
                    </select>
                </label>
                <RangeInputs ui shown=Tool::ThresholdBrush title="Range" low="Threshold low" high="Threshold high" range=ui.threshold/>
                <RangeInputs ui shown=Tool::Grow title="Grow range" low="Grow low" high="Grow high" range=ui.grow_range/>
                <label class="group" class:hidden=move || ui.tool.get() != Tool::Grow>
                    "at most"
                    <NumberInput label="Grow cap" min="1" step="1" value=ui.grow_cap/>
                    "voxels"
                </label>
            </div>
            <Tools3d ui labels=labels.clone()/>
            <SaveBar ui/>
            <div class="stage">
                <div class="views" class:one=move || ui.layout.get() == Layout::One node_ref=views>
                    {Plane::ALL
                        .into_iter()
                        .map(|plane| {
                            view! {
                                <figure class="view" class:active=move || ui.plane.get() == plane>
                                    <figcaption>{plane.name()}</figcaption>
                                    <canvas
                                        width="768" height="576" tabindex="0"
                                        data-plane=plane.name()
                                        data-testid=format!("view-{}", plane.name().to_lowercase())
                                        data-active=move || (ui.plane.get() == plane).to_string()
                                        on:contextmenu=|ev| ev.prevent_default()
                                    ></canvas>
                                </figure>
                            }
                        })
                        .collect_view()}
                    // Over the views, so showing it moves nothing under the pointer.
                    {move || ui.preview.get().map(|preview| view! {
                        <div class="notice preview" data-testid="preview" role="status">
                            {format!("{}: {} voxels", preview.what, preview.voxels)}
                            {preview.capped.then_some(" (stopped at the voxel cap)")}
                            <button class="primary" on:click=move |_| ui.send(Command::ApplyPreview)>"Apply"</button>
                            <button on:click=move |_| ui.send(Command::CancelPreview)>"Cancel"</button>
                        </div>
                    })}
                    <Show when=move || !ui.ready.get()>
                        <div class="loading" class:streaming=move || ui.streaming.get() data-testid="loading">
                            {move || match ui.failure.get() {
                                Some(message) => view! { <p class="error">{message}</p> }.into_any(),
                                None => {
                                    let (loaded, total) = ui.progress.get();
                                    view! {
                                        <p>"Loading image and mask…"</p>
                                        <progress max=total.max(1.0) value=loaded></progress>
                                        <p class="muted">{format!("{:.1} MB", loaded / 1e6)}</p>
                                    }.into_any()
                                }
                            }}
                        </div>
                    </Show>
                    <Show when=move || ui.help.get()>
                        <div class="help" data-testid="help">
                            <h2>"Keyboard shortcuts"</h2>
                            <table>
                                {SHORTCUTS.iter().map(|shortcut| view! { <tr><th>{shortcut.keys}</th><td>{shortcut.does}</td></tr> }).collect_view()}
                            </table>
                            <button on:click=move |_| ui.help.set(false)>"Close"</button>
                        </div>
                    </Show>
                </div>
                <div class="side">
                    {review(ui)}
                    <OverlaysPanel ui/>
                    <LabelList ui labels/>
                    <HistoryPanel ui/>
                </div>
            </div>
            <div class="statusline">
                <label>
                    {move || format!("{} slice ", ui.plane.get().name())}
                    <input
                        type="range" min="0" aria-label="Slice"
                        prop:max=move || ui.slice_count.get().saturating_sub(1).to_string()
                        prop:value=move || ui.slice.get().to_string()
                        on:input=move |ev| if let Ok(v) = event_target_value(&ev).parse() { ui.slice.set(v) }
                    />
                    <span data-testid="slice">{move || format!("{} / {}", ui.slice.get() + 1, ui.slice_count.get())}</span>
                </label>
                <span data-testid="crosshair">
                    {move || ui.crosshair.get().map(|Crosshair { voxel: [i, j, k], scanner_mm: [x, y, z] }| {
                        format!("crosshair voxel ({i}, {j}, {k}) · scanner ({x:.1}, {y:.1}, {z:.1}) mm")
                    })}
                </span>
                <span data-testid="cursor">{move || ui.cursor.get()}</span>
                <span class="muted" data-testid="tool-notice">{move || ui.notice.get()}</span>
            </div>
        </section>
    }
}

/// A number field bound to `value`; what does not parse as a number leaves it as it was.
#[component]
fn NumberInput<T>(label: &'static str, min: &'static str, step: &'static str, value: RwSignal<T>) -> impl IntoView
where
    T: std::str::FromStr + ToString + Send + Sync + 'static,
{
    view! {
        <input
            type="number" min=min step=step aria-label=label
            prop:value=move || value.with(ToString::to_string)
            on:change=move |ev| if let Ok(v) = event_target_value(&ev).parse() { value.set(v) }
        />
    }
}

/// Low and high bounds of an intensity range, shown while `shown` is the tool.
#[component]
fn RangeInputs(
    ui: ViewerUi,
    shown: Tool,
    title: &'static str,
    low: &'static str,
    high: &'static str,
    range: RwSignal<(f32, f32)>,
) -> impl IntoView {
    view! {
        <label class="group" class:hidden=move || ui.tool.get() != shown>
            {title}
            <input
                type="number" aria-label=low step="any"
                prop:value=move || range.get().0.to_string()
                on:change=move |ev| if let Ok(v) = event_target_value(&ev).parse() { range.update(|r| r.0 = v) }
            />
            <input
                type="number" aria-label=high step="any"
                prop:value=move || range.get().1.to_string()
                on:change=move |ev| if let Ok(v) = event_target_value(&ev).parse() { range.update(|r| r.1 = v) }
            />
        </label>
    }
}

/// The 3-D tools for the selected label and the paint rule.
#[component]
fn Tools3d(ui: ViewerUi, labels: Vec<LabelDef>) -> impl IntoView {
    let inside_choices = labels.clone();
    view! {
        <div class="toolbar tools3d">
            <button on:click=move |_| ui.send(Command::FillBetween) title=format!("Fill between slices along the active view ({})", shortcuts::key_of(Action::FillBetween))>
                "Fill between slices"
            </button>
            <div class="group">
                <button on:click=move |_| ui.send(Command::KeepLargestIsland)>"Keep largest island"</button>
                <button on:click=move |_| ui.send(Command::RemoveSmallIslands)>"Remove islands"</button>
                <label class="group">
                    "smaller than"
                    <NumberInput label="Smallest island" min="1" step="1" value=ui.island_min/>
                    "voxels"
                </label>
                <button on:click=move |_| ui.send(Command::FillHoles)>"Fill holes"</button>
            </div>
            <div class="group">
                "Smooth"
                <NumberInput label="Smoothing radius" min="0.1" step="0.5" value=ui.smooth_mm/>
                "mm"
                <button on:click=move |_| ui.send(Command::Smooth(Smoothing::Opening)) title="Removes spurs and thin bridges">"Open"</button>
                <button on:click=move |_| ui.send(Command::Smooth(Smoothing::Closing)) title="Fills gaps and notches">"Close"</button>
            </div>
            <label class="group">
                "Paint"
                <select
                    aria-label="Paint rule"
                    on:change=move |ev| {
                        let choice = event_target_value(&ev);
                        ui.area.set(match choice.as_str() {
                            "background" => EditableArea::Background,
                            value => value.parse().map_or(EditableArea::Everywhere, EditableArea::InsideLabel),
                        });
                    }
                >
                    <option value="everywhere">"over everything"</option>
                    <option value="background">"only over background"</option>
                    {inside_choices
                        .into_iter()
                        .map(|label| view! { <option value=label.value.to_string()>{format!("only inside {} {}", label.value, label.name)}</option> })
                        .collect_view()}
                </select>
            </label>
        </div>
    }
}

/// The overlays (the production and shadow predictions for ML engineers and admins, the
/// readings for the adjudicator), each hidden, outlined or filled over the mask, and one
/// compared with it voxel by voxel.
#[component]
fn OverlaysPanel(ui: ViewerUi) -> impl IntoView {
    let overlays = ui.overlays.get_value();
    (!overlays.is_empty()).then(|| {
        let has = |kind: OverlayKind| overlays.iter().any(|o| o.kind == kind);
        let heading = match (has(OverlayKind::Prediction), has(OverlayKind::Reading)) {
            (true, true) => "Predictions and readings",
            (false, true) => "Readings",
            _ => "Predictions",
        };
        let compared = ui.disagreement.get_untracked();
        let rows = overlays
            .iter()
            .enumerate()
            .map(|(n, overlay)| {
                let [r, g, b] = overlay.color;
                let name = overlay.name.clone();
                view! {
                    <tr>
                        <td><span class="swatch" style=format!("background: rgb({r}, {g}, {b})")></span>{name.clone()}</td>
                        <td>
                            <select
                                aria-label=format!("Draw {name}")
                                on:change=move |ev| {
                                    let style = match event_target_value(&ev).as_str() {
                                        "outline" => Some(OverlayStyle::Outline),
                                        "fill" => Some(OverlayStyle::Fill),
                                        _ => None,
                                    };
                                    ui.overlay_styles.update(|styles| styles[n] = style);
                                }
                            >
                                <option value="hidden">"hidden"</option>
                                <option value="outline">"outline"</option>
                                <option value="fill">"fill"</option>
                            </select>
                        </td>
                    </tr>
                }
            })
            .collect_view();
        let choices = overlays
            .iter()
            .enumerate()
            .map(|(n, overlay)| view! { <option value=n.to_string() selected=compared == Some(n)>{overlay.name.clone()}</option> })
            .collect_view();
        let only_in = move || {
            ui.disagreement.get().and_then(|n| ui.overlays.with_value(|o| o.get(n).map(|o| o.kind.only_in())))
        };
        view! {
            <aside class="overlays" data-testid="overlays">
                <h2>{heading}</h2>
                <table><tbody>{rows}</tbody></table>
                {(overlays.iter().filter(|o| o.kind == OverlayKind::Reading).count() > 1).then(|| view! {
                    <label>
                        <input type="checkbox" prop:checked=move || ui.readers_disagree.get()
                            on:change=move |ev| ui.readers_disagree.set(event_target_checked(&ev))/>
                        " Highlight where readers disagree"
                    </label>
                })}
                <label>
                    "Disagreement with "
                    <select
                        aria-label="Disagreement with"
                        on:change=move |ev| ui.disagreement.set(event_target_value(&ev).parse().ok())
                    >
                        <option value="" selected=compared.is_none()>"none"</option>
                        {choices}
                    </select>
                </label>
                {move || ui.disagreement_counts.get().map(|(human, other)| view! {
                    <p data-testid="disagreement">
                        <span class="human-only">{format!("{human} voxels only in the mask")}</span>
                        ", "
                        <span class="prediction-only">{format!("{other} {}", only_in().unwrap_or_default())}</span>
                    </p>
                })}
            </aside>
        }
    })
}

/// Each label with its visibility, voxel count and volume.
#[component]
fn LabelList(ui: ViewerUi, labels: Vec<LabelDef>) -> impl IntoView {
    view! {
        <aside class="labels" data-testid="labels">
            <h2>"Labels"</h2>
            // An explicit tbody: the HTML parser adds one, and hydration must find what it rendered.
            <table><tbody>
                {labels
                    .into_iter()
                    .map(|label| {
                        let value = label.value;
                        let voxels = move || ui.counts.with(|counts| counts.get(value as usize).copied().unwrap_or(0));
                        view! {
                            <tr data-label=value>
                                <td>
                                    <input
                                        type="checkbox" aria-label=format!("Show {}", label.name)
                                        prop:checked=move || ui.hidden.with(|hidden| !hidden.contains(&value))
                                        on:change=move |ev| {
                                            let shown = event_target_checked(&ev);
                                            ui.hidden.update(|hidden| {
                                                hidden.retain(|&v| v != value);
                                                if !shown {
                                                    hidden.push(value);
                                                }
                                            });
                                        }
                                    />
                                </td>
                                <td><span class="swatch" style=format!("background: {}", label.color)></span>{format!("{} {}", value, label.name)}</td>
                                <td class="count">{move || voxels().to_string()}</td>
                                <td class="count">{move || format!("{:.2} mL", voxels() as f64 * ui.voxel_ml.get())}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody></table>
        </aside>
    }
}

#[component]
fn SaveBar(ui: ViewerUi) -> impl IntoView {
    view! {
        <div class="savebar">
            <Show
                when=move || ui.may_save.get()
                fallback=|| view! {
                    <span class="muted" data-testid="read-only">
                        "You can look and paint here, but cannot save: this case is someone else's to label."
                    </span>
                }
            >
                <button class="primary" on:click=move |_| ui.send(Command::Save)
                    prop:disabled=move || matches!(ui.status.get(), SaveStatus::Saving { .. }) || ui.viewing.get().is_some()>
                    "Save"
                </button>
            </Show>
            <span data-testid="save-status" role="status">
                {move || match ui.status.get() {
                    SaveStatus::Idle => String::new(),
                    SaveStatus::Saving { attempt: 0 } => "Saving…".to_string(),
                    SaveStatus::Saving { attempt } => format!("Saving… (retry {attempt})"),
                    SaveStatus::Saved { version, voxels } => format!("Saved (version {version}, {voxels} voxels changed)"),
                    SaveStatus::Failed(message) => format!("Not saved: {message}"),
                }}
            </span>
            <span data-testid="unsaved" class="muted">
                {move || match ui.unsaved.get() {
                    0 => String::new(),
                    n => format!("{n} unsaved voxel edits (kept in this browser)"),
                }}
            </span>
            {move || ui.conflict.get().map(|message| view! {
                <div class="notice conflict" data-testid="conflict" role="alert">
                    <p>{message}</p>
                    <button on:click=move |_| ui.send(Command::LoadNewest)>"Load newest version and re-apply my edits"</button>
                </div>
            })}
            {move || ui.kept.get().map(|kept| view! {
                <div class="notice" data-testid="kept-edits" role="alert">
                    <p>
                        {format!("{} unsaved voxel edits from {} were kept in this browser", kept.voxels, format_time(kept.saved_at_ms))}
                        {kept.on_older_version.then_some(" (made on an older version; they will be re-applied on the newest)")}
                        "."
                    </p>
                    <button on:click=move |_| ui.send(Command::RestoreKept)>"Restore them"</button>
                    <button on:click=move |_| ui.send(Command::DiscardKept)>"Discard"</button>
                </div>
            })}
            {move || ui.viewing.get().map(|version| view! {
                <div class="notice" data-testid="viewing">
                    <p>{format!("Viewing the version saved by {} at {} (read only).", version.username, format_time(version.created_at_ms))}</p>
                    <button on:click=move |_| ui.send(Command::BackToEditing)>"Back to my mask"</button>
                </div>
            })}
        </div>
    }
}

#[component]
fn HistoryPanel(ui: ViewerUi) -> impl IntoView {
    view! {
        <aside class="history" data-testid="history">
            <h2>"Versions"</h2>
            <ol>
                {move || {
                    let versions = ui.history.get();
                    let total = versions.len();
                    versions
                        .into_iter()
                        .enumerate()
                        .map(|(position, version)| {
                            let shown = version.clone();
                            view! {
                                <li>
                                    <strong>{format!("v{}", total - position)}</strong>
                                    " " {version.username.to_string()}
                                    <br/>
                                    <span class="muted">
                                        {format!("{} · {} voxels", format_time(version.created_at_ms), version.voxels_changed)}
                                    </span>
                                    <button on:click=move |_| ui.send(Command::ViewVersion(shown.clone()))>"View"</button>
                                </li>
                            }
                        })
                        .collect_view()
                }}
                <li><strong>"v0"</strong> " as imported"</li>
            </ol>
        </aside>
    }
}
