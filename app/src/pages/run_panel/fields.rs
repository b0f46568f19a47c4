//! The form fields built from a workflow's editable inputs: what each holds, the value it
//! sends, and its control.

use engine::model::*;
use leptos::prelude::*;
use serde_json::Value;

use crate::browser;

/// One editable input and what the form holds for it.
#[derive(Clone)]
pub(crate) struct Field {
    pub(crate) spec: EditableInput,
    pub(crate) text: RwSignal<String>,
    pub(crate) checked: RwSignal<bool>,
}

impl Field {
    pub(crate) fn new(spec: EditableInput) -> Field {
        let field = Field {
            text: RwSignal::new(String::new()),
            checked: RwSignal::new(false),
            spec,
        };
        field.set(&field.spec.value.clone());
        field
    }

    /// Shows `value` in the field (a remembered value, one from the history).
    pub(crate) fn set(&self, value: &Value) {
        self.text.set(match value {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        });
        self.checked.set(value.as_bool().unwrap_or(false));
    }

    /// The value to send, or a sentence saying why the text is not one.
    pub(crate) fn value(&self) -> Result<InputValue, String> {
        let value = input_value(
            self.spec.kind,
            &self.text.get_untracked(),
            self.checked.get_untracked(),
        )
        .map_err(|why| format!("{}: {why}", self.spec.label))?;
        Ok(InputValue {
            node_id: self.spec.node_id.clone(),
            input: self.spec.input.clone(),
            value,
        })
    }
}

fn input_value(kind: InputKind, text: &str, checked: bool) -> Result<Value, String> {
    let trimmed = text.trim();
    let needs_number = || {
        if trimmed.is_empty() {
            "a number is needed".to_string()
        } else {
            format!("{trimmed:?} is not a number")
        }
    };
    Ok(match kind {
        InputKind::Text | InputKind::Combo => Value::String(text.to_string()),
        InputKind::Bool => Value::Bool(checked),
        InputKind::Seed => Value::from(
            trimmed
                .parse::<u64>()
                .map_err(|_| format!("{} (a whole number from 0 up)", needs_number()))?,
        ),
        InputKind::Int => match (trimmed.parse::<i64>(), trimmed.parse::<f64>()) {
            (Ok(n), _) => Value::from(n),
            (_, Ok(f)) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9e15 => {
                Value::from(f as i64)
            }
            (_, Ok(f)) if f.is_finite() => return Err(format!("{trimmed} is not a whole number")),
            _ => return Err(needs_number()),
        },
        InputKind::Float => trimmed
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(needs_number)?,
    })
}

/// The control for one field (text, number, seed with a Random button, menu or checkbox),
/// labelled, with its range and where in the workflow it sits as a tooltip.
#[component]
pub(crate) fn InputField(field: Field) -> impl IntoView {
    let spec = field.spec.clone();
    let text = field.text;
    let checked = field.checked;
    let where_ = format!(
        "{} (node {}) · {}",
        spec.node_title, spec.node_id, spec.input
    );
    let control_class =
        "w-full min-w-0 rounded-lg border border-line bg-surface-2 px-3 py-2 text-sm text-fg";
    let hint = match spec.kind {
        InputKind::Int | InputKind::Float => match (spec.min, spec.max) {
            (Some(min), Some(max)) => {
                Some(format!("{} to {}", format_number(min), format_number(max)))
            }
            (Some(min), None) => Some(format!("at least {}", format_number(min))),
            (None, Some(max)) => Some(format!("at most {}", format_number(max))),
            (None, None) => None,
        },
        _ => None,
    };
    let node_id = spec.node_id.clone();
    let input = spec.input.clone();
    // Two columns, also on phones: numbers take one, texts both; a seed (with its button) and
    // a menu take both on phones.
    let span = match spec.kind {
        InputKind::Text => "col-span-2",
        InputKind::Seed | InputKind::Combo => "col-span-2 sm:col-span-1",
        _ => "",
    };
    let label = spec.label.clone();
    let control = match spec.kind {
        InputKind::Text => view! {
            <textarea
                data-testid="workflow-input"
                data-node=node_id
                data-input=input
                rows="3"
                class=format!("{control_class} resize-y leading-snug")
                prop:value=text
                on:input=move |ev| text.set(event_target_value(&ev))
            >
                {text.get_untracked()}
            </textarea>
        }
        .into_any(),
        InputKind::Bool => view! {
            <input
                type="checkbox"
                data-testid="workflow-input"
                data-node=node_id
                data-input=input
                class="h-5 w-5 accent-accent"
                prop:checked=checked
                on:change=move |ev| checked.set(event_target_checked(&ev))
            />
        }
        .into_any(),
        InputKind::Combo if spec.options.as_ref().is_some_and(|o| !o.is_empty()) => {
            let mut options = spec.options.clone().unwrap_or_default();
            let current = text.get_untracked();
            let unknown = !options.contains(&current);
            if unknown {
                options.insert(0, current.clone());
            }
            view! {
                <select
                    data-testid="workflow-input"
                    data-node=node_id
                    data-input=input
                    class=control_class
                    prop:value=text
                    on:change=move |ev| text.set(event_target_value(&ev))
                >
                    {options.into_iter().map(|o| {
                        let value = o.clone();
                        let label = if unknown && o == current { format!("{o} (not offered by ComfyUI)") } else { o.clone() };
                        view! { <option value=o selected=move || text.with(|t| *t == value)>{label}</option> }
                    }).collect_view()}
                </select>
            }
            .into_any()
        }
        InputKind::Combo => view! {
            <input
                type="text"
                data-testid="workflow-input"
                data-node=node_id
                data-input=input
                class=control_class
                prop:value=text
                on:input=move |ev| text.set(event_target_value(&ev))
            />
        }
        .into_any(),
        InputKind::Int | InputKind::Float | InputKind::Seed => {
            let seed = spec.kind == InputKind::Seed;
            let step = match (spec.step, spec.kind) {
                (Some(s), _) => format_number(s),
                (None, InputKind::Float) => "any".to_string(),
                (None, _) => "1".to_string(),
            };
            let (min, max) = (spec.min, spec.max);
            let number = view! {
                <input
                    type="number"
                    inputmode=if spec.kind == InputKind::Float { "decimal" } else { "numeric" }
                    data-testid="workflow-input"
                    data-node=node_id
                    data-input=input
                    min=min.map(format_number)
                    max=(!seed).then_some(max).flatten().map(format_number)
                    step=step
                    class=control_class
                    prop:value=text
                    on:input=move |ev| text.set(event_target_value(&ev))
                />
            };
            if seed {
                view! {
                    <div class="flex min-w-0 gap-2">
                        {number}
                        <button
                            type="button"
                            class="btn-secondary shrink-0"
                            data-testid="input-random"
                            title="A new random seed"
                            on:click=move |_| text.set(browser::random_seed(min, max).to_string())
                        >
                            "Random"
                        </button>
                    </div>
                }
                .into_any()
            } else {
                number.into_any()
            }
        }
    };
    if spec.kind == InputKind::Bool {
        return view! {
            <label class=format!("flex min-w-0 items-center gap-2 self-end py-2 text-sm {span}") title=where_>
                {control}
                <span class="font-medium wrap-anywhere">{label}</span>
            </label>
        }
        .into_any();
    }
    // The label (and range) take what height the row has left, so that the fields of a row line
    // up even when one label wraps.
    view! {
        <label class=format!("flex min-w-0 flex-col gap-1.5 text-sm {span}") title=where_>
            <span class="flex flex-1 flex-col justify-end gap-0.5">
                <span class="font-medium wrap-anywhere">{label}</span>
                {hint.map(|h| view! { <span class="text-xs text-muted tabular-nums">{h}</span> })}
            </span>
            {control}
        </label>
    }
    .into_any()
}

/// `3`, `2.5`.
pub(crate) fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{n:.0}")
    } else {
        format!("{n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_values_parse_by_kind() {
        assert_eq!(
            input_value(InputKind::Int, " 96 ", false),
            Ok(Value::from(96))
        );
        assert_eq!(
            input_value(InputKind::Int, "96.0", false),
            Ok(Value::from(96))
        );
        assert!(input_value(InputKind::Int, "9.5", false).is_err());
        assert!(input_value(InputKind::Int, "", false).is_err());
        assert_eq!(
            input_value(InputKind::Seed, "18446744073709551615", false),
            Ok(Value::from(u64::MAX))
        );
        assert!(input_value(InputKind::Seed, "-1", false).is_err());
        assert_eq!(
            input_value(InputKind::Float, "7.5", false),
            Ok(Value::from(7.5))
        );
        assert_eq!(
            input_value(InputKind::Bool, "", true),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            input_value(InputKind::Text, " a cat ", false),
            Ok(Value::from(" a cat "))
        );
    }
}
