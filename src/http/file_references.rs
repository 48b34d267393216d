//! Input parts that point at an uploaded file (`file_id` on an `input_image` or `input_file`
//! part). The Codex backend has no Files API, so such a request could only fail upstream, after
//! an account was leased for it; it is refused here with a 400 whose `param` names the part.
//! An image sent inline (a data URL in `image_url`) passes. A scan for the key comes first: only
//! an input that has it is parsed.

use memchr::memmem;
use serde_json::value::RawValue;
use serde_json::Value;

use super::error::ApiError;

/// `Err` naming the first part of `input` that refers to an uploaded file.
pub fn refuse_file_ids(input: Option<&RawValue>) -> Result<(), ApiError> {
    let Some(input) = input else {
        return Ok(());
    };
    if memmem::find(input.get().as_bytes(), b"\"file_id\"").is_none() {
        return Ok(());
    }
    let Ok(Value::Array(items)) = serde_json::from_str(input.get()) else {
        return Ok(());
    };
    match first_file_reference(&items) {
        Some(param) => Err(ApiError::FileReference { param }),
        None => Ok(()),
    }
}

/// Where the first file reference is, as a path into the body: parts are a message's `content`
/// or a tool result's `output`.
fn first_file_reference(items: &[Value]) -> Option<String> {
    items.iter().enumerate().find_map(|(i, item)| {
        ["content", "output"].into_iter().find_map(|field| {
            let parts = item.get(field)?.as_array()?;
            let j = parts.iter().position(names_a_file)?;
            Some(format!("input[{i}].{field}[{j}].file_id"))
        })
    })
}

fn names_a_file(part: &Value) -> bool {
    matches!(
        part.get("type").and_then(Value::as_str),
        Some("input_image" | "input_file")
    ) && part.get("file_id").is_some_and(|id| !id.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str) -> Result<(), ApiError> {
        let raw: Box<RawValue> = serde_json::from_str(input).unwrap();
        refuse_file_ids(Some(&raw))
    }

    #[test]
    fn a_file_id_is_named_by_its_path() {
        let input = r#"[{"role":"user","content":"hi"},{"role":"user","content":[{"type":"input_text","text":"look"},{"type":"input_image","file_id":"file-1"}]}]"#;
        match check(input) {
            Err(ApiError::FileReference { param }) => {
                assert_eq!(param, "input[1].content[1].file_id")
            }
            other => panic!("{other:?}"),
        }
        let output = r#"[{"type":"function_call_output","call_id":"c","output":[{"type":"input_file","file_id":"file-2"}]}]"#;
        assert!(
            matches!(check(output), Err(ApiError::FileReference { param }) if param == "input[0].output[0].file_id")
        );
    }

    #[test]
    fn inline_images_and_text_mentioning_file_ids_pass() {
        let inline = r#"[{"role":"user","content":[{"type":"input_image","image_url":"data:image/png;base64,iVBORw0KGgo="}]}]"#;
        assert!(check(inline).is_ok());
        let text = r#"[{"role":"user","content":[{"type":"input_text","text":"what is a \"file_id\"?"}]}]"#;
        assert!(check(text).is_ok());
        let null_id = r#"[{"role":"user","content":[{"type":"input_image","file_id":null,"image_url":"data:,"}]}]"#;
        assert!(check(null_id).is_ok());
    }
}
