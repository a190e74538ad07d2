//! The viewer and mask editor's controls and canvas. The server renders them; in the browser
//! `crate::browser::viewer` downloads the volumes, draws, and carries out the commands the
//! controls send through [`ViewerUi`].

use leptos::prelude::*;

use crate::api::CaseArtifacts;
use crate::pages::common::format_time;
use crate::viewer::orientation::Plane;
use crate::viewer::render::Window;
use crate::viewer::ui::{Command, SaveStatus, Tool, ViewerUi, PERCENTILE_PRESETS};

/// Keyboard shortcuts, listed in the help overlay (ITK-SNAP / OHIF style).
pub const SHORTCUTS: [(&str, &str); 14] = [
    ("B / E / T / F", "brush, eraser, threshold brush, fill"),
    ("1 – 9", "choose label"),
    ("[ / ]", "smaller / larger brush"),
    ("↑ ↓, Page Up / Down, wheel", "next / previous slice"),
    ("A / C / S", "axial, coronal, sagittal plane"),
    ("Ctrl + wheel", "zoom"),
    ("Shift + drag, middle drag", "pan"),
    ("Right drag", "window / level"),
    ("O", "outline / filled mask"),
    ("R", "reset zoom and pan"),
    ("Ctrl + Z", "undo"),
    ("Ctrl + Y, Ctrl + Shift + Z", "redo"),
    ("Ctrl + S", "save"),
    ("?", "show / hide this help"),
];

#[component]
pub fn CaseViewer(case: CaseArtifacts) -> impl IntoView {
    let ui = ViewerUi::new(case);
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    #[cfg(feature = "hydrate")]
    {
        let owner = Owner::current().expect("components run under a reactive owner");
        canvas.on_load(move |canvas| crate::browser::viewer::start(ui, canvas, owner));
    }
    let labels = ui.case.with_value(|case| case.labels.clone());
    let modality_presets = Window::CT_PRESETS;
    view! {
        <section class="viewer" data-testid="viewer">
            <div class="toolbar">
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
                        .map(|(tool, name, key)| {
                            view! {
                                <button
                                    class:active=move || ui.tool.get() == tool
                                    title=format!("{name} ({key})")
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
                    <button on:click=move |_| ui.help.update(|open| *open = !*open) title="Keyboard shortcuts (?)">"?"</button>
                </div>
            </div>
            <div class="toolbar">
                <div class="group palette" role="radiogroup" aria-label="Label">
                    {labels
                        .into_iter()
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
                <label class="group" class:hidden=move || ui.tool.get() != Tool::ThresholdBrush>
                    "Range"
                    <input
                        type="number" aria-label="Threshold low" step="any"
                        prop:value=move || ui.threshold.get().0.to_string()
                        on:input=move |ev| if let Ok(v) = event_target_value(&ev).parse() { ui.threshold.update(|t| t.0 = v) }
                    />
                    <input
                        type="number" aria-label="Threshold high" step="any"
                        prop:value=move || ui.threshold.get().1.to_string()
                        on:input=move |ev| if let Ok(v) = event_target_value(&ev).parse() { ui.threshold.update(|t| t.1 = v) }
                    />
                </label>
            </div>
            <SaveBar ui/>
            <div class="stage">
                <div class="canvas-wrap">
                    <canvas node_ref=canvas width="768" height="576" data-testid="slice-canvas" tabindex="0"
                        on:contextmenu=|ev| ev.prevent_default()></canvas>
                    <Show when=move || !ui.ready.get()>
                        <div class="loading" data-testid="loading">
                            {move || match ui.failure.get() {
                                Some(message) => view! { <p class="error">{message}</p> }.into_any(),
                                None => {
                                    let (loaded, total) = ui.progress.get();
                                    view! {
                                        <p>"Downloading image and mask…"</p>
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
                                {SHORTCUTS.iter().map(|(keys, what)| view! { <tr><th>{*keys}</th><td>{*what}</td></tr> }).collect_view()}
                            </table>
                            <button on:click=move |_| ui.help.set(false)>"Close"</button>
                        </div>
                    </Show>
                </div>
                <HistoryPanel ui/>
            </div>
            <div class="statusline">
                <label>
                    "Slice "
                    <input
                        type="range" min="0" aria-label="Slice"
                        prop:max=move || ui.slice_count.get().saturating_sub(1).to_string()
                        prop:value=move || ui.slice.get().to_string()
                        on:input=move |ev| if let Ok(v) = event_target_value(&ev).parse() { ui.slice.set(v) }
                    />
                    <span data-testid="slice">{move || format!("{} / {}", ui.slice.get() + 1, ui.slice_count.get())}</span>
                </label>
                <span data-testid="cursor">{move || ui.cursor.get()}</span>
            </div>
        </section>
    }
}

#[component]
fn SaveBar(ui: ViewerUi) -> impl IntoView {
    view! {
        <div class="savebar">
            <button class="primary" on:click=move |_| ui.send(Command::Save)
                prop:disabled=move || matches!(ui.status.get(), SaveStatus::Saving { .. }) || ui.viewing.get().is_some()>
                "Save"
            </button>
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
                                    " " {version.username.clone()}
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
