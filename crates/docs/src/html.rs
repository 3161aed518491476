//! A self-contained HTML API reference rendered from the OpenAPI document
//! (served at `GET /docs`): inline CSS and a few lines of inline JavaScript
//! for filtering, no external assets, readable without JavaScript.

use serde_json::Value as Json;

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Inline markdown: `code` spans; everything else escaped.
fn inline(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str("<code>");
            out.push_str(&escape(part));
            out.push_str("</code>");
        } else {
            out.push_str(&escape(part));
        }
    }
    out
}

/// A small markdown subset: paragraphs, fenced code blocks, `code` spans,
/// and `* `/`- ` list items.
pub fn markdown(text: &str) -> String {
    let mut out = String::new();
    let mut paragraph: Vec<&str> = Vec::new();
    let mut list: Vec<String> = Vec::new();
    let mut code: Option<Vec<&str>> = None;
    let flush = |out: &mut String, paragraph: &mut Vec<&str>, list: &mut Vec<String>| {
        if !paragraph.is_empty() {
            out.push_str("<p>");
            out.push_str(&inline(&paragraph.join(" ")));
            out.push_str("</p>");
            paragraph.clear();
        }
        if !list.is_empty() {
            out.push_str("<ul>");
            for item in list.iter() {
                out.push_str("<li>");
                out.push_str(&inline(item));
                out.push_str("</li>");
            }
            out.push_str("</ul>");
            list.clear();
        }
    };
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(block) = code.as_mut() {
            if trimmed.starts_with("```") {
                out.push_str("<pre><code>");
                out.push_str(&escape(&block.join("\n")));
                out.push_str("</code></pre>");
                code = None;
            } else {
                block.push(line);
            }
            continue;
        }
        if trimmed.starts_with("```") {
            flush(&mut out, &mut paragraph, &mut list);
            code = Some(Vec::new());
        } else if trimmed.is_empty() {
            flush(&mut out, &mut paragraph, &mut list);
        } else if let Some(item) = trimmed
            .strip_prefix("* ")
            .or_else(|| trimmed.strip_prefix("- "))
        {
            if !paragraph.is_empty() {
                flush(&mut out, &mut paragraph, &mut list);
            }
            list.push(item.to_owned());
        } else if let Some(last) = list.last_mut() {
            // A continuation line of the last list item.
            last.push(' ');
            last.push_str(trimmed);
        } else {
            paragraph.push(trimmed);
        }
    }
    if let Some(block) = code {
        out.push_str("<pre><code>");
        out.push_str(&escape(&block.join("\n")));
        out.push_str("</code></pre>");
    }
    flush(&mut out, &mut paragraph, &mut list);
    out
}

fn pretty(json: &Json) -> String {
    serde_json::to_string_pretty(json).unwrap_or_default()
}

fn anchor(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn code_block(title: &str, json: &Json) -> String {
    format!(
        "<details><summary>{}</summary><pre><code>{}</code></pre></details>",
        escape(title),
        escape(&pretty(json))
    )
}

fn examples_html(media: &Json) -> String {
    let mut out = String::new();
    if let Some(examples) = media.get("examples").and_then(Json::as_object) {
        for (name, example) in examples {
            out.push_str(&format!(
                "<div class=\"example\"><div class=\"label\">example: {}</div><pre><code>{}</code></pre></div>",
                escape(name),
                escape(&pretty(example.get("value").unwrap_or(&Json::Null)))
            ));
        }
    }
    out
}

const STYLE: &str = r#"
:root { --fg:#1d2330; --muted:#5b6474; --line:#e3e6ec; --accent:#2f5bd3; --bg:#fff; --code:#f5f7fa; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif; color:var(--fg); background:var(--bg); }
header { padding:24px 32px; border-bottom:1px solid var(--line); }
header h1 { margin:0 0 4px; font-size:24px; }
header .version { color:var(--muted); font-size:13px; }
.layout { display:flex; align-items:flex-start; }
nav { position:sticky; top:0; width:300px; max-height:100vh; overflow:auto; padding:16px; border-right:1px solid var(--line); flex:none; }
nav input { width:100%; padding:6px 8px; border:1px solid var(--line); border-radius:6px; font:inherit; }
nav h3 { margin:16px 0 4px; font-size:12px; text-transform:uppercase; color:var(--muted); letter-spacing:.04em; }
nav a { display:block; padding:2px 0; color:var(--fg); text-decoration:none; font-size:13px; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
nav a:hover { color:var(--accent); }
main { padding:16px 32px 64px; min-width:0; flex:1; }
section.op { border:1px solid var(--line); border-radius:8px; padding:16px 20px; margin:16px 0; }
.op h2 { margin:0; font-size:17px; }
.route { font-family:ui-monospace,Menlo,monospace; font-size:13px; margin:4px 0 8px; word-break:break-all; }
.method { display:inline-block; background:var(--accent); color:#fff; border-radius:4px; padding:0 6px; margin-right:6px; font-weight:600; }
.kind { color:var(--muted); font-size:12px; margin-left:6px; }
code { font-family:ui-monospace,Menlo,monospace; font-size:12.5px; background:var(--code); padding:1px 4px; border-radius:4px; }
pre { background:var(--code); padding:10px 12px; border-radius:6px; overflow:auto; }
pre code { background:none; padding:0; }
h4 { margin:14px 0 6px; font-size:13px; text-transform:uppercase; color:var(--muted); letter-spacing:.04em; }
.example .label { font-size:12px; color:var(--muted); }
details summary { cursor:pointer; color:var(--muted); font-size:13px; }
table { border-collapse:collapse; font-size:13px; }
td { border-top:1px solid var(--line); padding:4px 10px 4px 0; vertical-align:top; }
.hidden { display:none; }
"#;

const SCRIPT: &str = r#"
(function () {
  var input = document.getElementById('filter');
  if (!input) return;
  input.addEventListener('input', function () {
    var q = input.value.toLowerCase();
    document.querySelectorAll('[data-search]').forEach(function (el) {
      el.classList.toggle('hidden', q !== '' && el.getAttribute('data-search').indexOf(q) < 0);
    });
  });
})();
"#;

fn responses_html(op: &Json) -> String {
    let mut out = String::from("<h4>Responses</h4><table>");
    if let Some(responses) = op.get("responses").and_then(Json::as_object) {
        for (status, response) in responses {
            let description = match response.get("$ref").and_then(Json::as_str) {
                Some(r) => r.rsplit('/').next().unwrap_or(r).to_owned(),
                None => response
                    .get("description")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            };
            out.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td></tr>",
                escape(status),
                inline(&description)
            ));
        }
    }
    out.push_str("</table>");
    out
}

/// The HTML reference of an OpenAPI document made by [`crate::openapi`].
pub fn render(spec: &Json) -> String {
    let title = spec["info"]["title"].as_str().unwrap_or("API");
    let version = spec["info"]["version"].as_str().unwrap_or_default();
    let mut nav = String::new();
    let mut body = String::new();
    let mut groups: Vec<(String, Vec<(String, &Json)>)> = Vec::new();
    if let Some(paths) = spec["paths"].as_object() {
        for (route, item) in paths {
            let Some(op) = item.get("post") else { continue };
            let tag = op["tags"][0].as_str().unwrap_or("other").to_owned();
            match groups.iter_mut().find(|(t, _)| *t == tag) {
                Some((_, ops)) => ops.push((route.clone(), op)),
                None => groups.push((tag, vec![(route.clone(), op)])),
            }
        }
    }
    for (tag, ops) in &groups {
        nav.push_str(&format!("<h3>{}</h3>", escape(tag)));
        for (route, op) in ops {
            let id = anchor(op["operationId"].as_str().unwrap_or(route));
            let label = op["x-convex-path"].as_str().unwrap_or(route);
            let search = format!(
                "{} {} {}",
                label,
                op["summary"].as_str().unwrap_or_default(),
                route
            )
            .to_lowercase();
            nav.push_str(&format!(
                "<a href=\"#{id}\" data-search=\"{}\" title=\"{}\">{}</a>",
                escape(&search),
                escape(op["summary"].as_str().unwrap_or_default()),
                escape(label)
            ));
            let request = &op["requestBody"]["content"]["application/json"];
            let ok = &op["responses"]["200"]["content"]["application/json"];
            let kind = op["x-convex-kind"]
                .as_str()
                .map(|k| format!("<span class=\"kind\">{}</span>", escape(k)))
                .unwrap_or_default();
            body.push_str(&format!(
                "<section class=\"op\" id=\"{id}\" data-search=\"{}\">\
                 <h2>{}{kind}</h2>\
                 <div class=\"route\"><span class=\"method\">POST</span>{}</div>\
                 {}\
                 <h4>Request</h4>{}{}\
                 <h4>Response 200</h4>{}{}\
                 {}</section>",
                escape(&search),
                escape(op["summary"].as_str().unwrap_or_default()),
                escape(route),
                markdown(op["description"].as_str().unwrap_or_default()),
                examples_html(request),
                code_block("Request body schema", &request["schema"]),
                examples_html(ok),
                code_block("Response schema", &ok["schema"]),
                responses_html(op),
            ));
        }
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title_e}</title><style>{STYLE}</style></head><body>\
         <header><h1>{title_e}</h1><div class=\"version\">version {version} · OpenAPI {openapi} · \
         <a href=\"openapi.json\">openapi.json</a></div>{description}</header>\
         <div class=\"layout\"><nav><input id=\"filter\" type=\"search\" \
         placeholder=\"Filter functions…\" aria-label=\"Filter functions\">{nav}</nav>\
         <main><h4>Authentication</h4>{auth}{body}</main></div>\
         <script>{SCRIPT}</script></body></html>\n",
        title_e = escape(title),
        version = escape(version),
        openapi = escape(spec["openapi"].as_str().unwrap_or_default()),
        description = markdown(spec["info"]["description"].as_str().unwrap_or_default()),
        auth = markdown(
            spec["components"]["securitySchemes"]["bearerAuth"]["description"]
                .as_str()
                .unwrap_or_default()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_renders_markdown() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let html =
            markdown("Uses `<b>`.\nSecond line.\n\n* one\n* two\n\n```json\n{\"a\": 1}\n```");
        assert_eq!(
            html,
            "<p>Uses <code>&lt;b&gt;</code>. Second line.</p><ul><li>one</li><li>two</li></ul>\
             <pre><code>{&quot;a&quot;: 1}</code></pre>"
        );
    }

    #[test]
    fn renders_operations() {
        let spec = serde_json::json!({
            "openapi": "3.1.0",
            "info": {"title": "T <x>", "version": "1", "description": "d"},
            "paths": {"/api/run/a/b": {"post": {
                "operationId": "aB", "summary": "Gets b", "description": "desc `c`",
                "tags": ["a"], "x-convex-path": "a:b", "x-convex-kind": "query",
                "requestBody": {"content": {"application/json": {"schema": {"type": "object"},
                    "examples": {"request": {"value": {"args": {"k": "<v>"}}}}}}},
                "responses": {"200": {"description": "ok"}, "400": {"$ref": "#/components/responses/BadRequest"}}
            }}},
            "components": {"securitySchemes": {"bearerAuth": {"description": "JWT"}}}
        });
        let html = render(&spec);
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains("<title>T &lt;x&gt;</title>"));
        assert!(html.contains("id=\"aB\""));
        assert!(html.contains("href=\"#aB\""));
        assert!(html.contains("desc <code>c</code>"));
        assert!(html.contains("&quot;&lt;v&gt;&quot;"));
        assert!(html.contains("BadRequest"));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external assets"
        );
    }
}
