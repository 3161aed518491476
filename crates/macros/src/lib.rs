//! `#[function(...)]`: declares a Connvo function where it is written.
//!
//! ```ignore
//! /// @summary Gets a meeting by id
//! /// @description …
//! #[function(query, path = "meetings/queries:getMeeting",
//!            args = v::object([("meetingId", v::id("meetings"))]),
//!            returns = meeting_view())]
//! pub async fn get_meeting(ctx: QueryCtx, args: GetMeetingArgs) -> Result<MeetingView> { … }
//! ```
//!
//! leaves the function as written (its doc comment stays visible in rustdoc
//! and editor hovers) and adds `pub fn get_meeting_spec() -> runtime::FunctionSpec`,
//! which carries the kind, visibility, validators and the doc comment text, so
//! the registry — and the documentation tooling built on it — sees the same
//! words as rustdoc. Kinds: `query`, `mutation`, `action`, `internal_query`,
//! `internal_mutation`, `internal_action`. Optional: `retry = <expr>`
//! (a `runtime::RetryPolicy`); for queries, `access = <fn>`: an
//! `async fn(QueryCtx, A) -> Result<()>` that decides whether the caller may
//! run the query, which then sees no identity in its body, so live
//! subscribers share its executions (`runtime::FunctionDef::query_with_access`).
//! `args` defaults to an empty object and `returns` to `v::any()`.
//!
//! Written by hand because it is ~100 lines of the product's own glue; it
//! only depends on `syn`/`quote`.

use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Ident, ItemFn, LitStr, Meta, Token, parse_macro_input};

struct Attr {
    kind: Ident,
    path: LitStr,
    args: Option<Expr>,
    returns: Option<Expr>,
    retry: Option<Expr>,
    access: Option<Expr>,
}

impl Parse for Attr {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let kind: Ident = input.parse()?;
        let mut path = None;
        let mut args = None;
        let mut returns = None;
        let mut retry = None;
        let mut access = None;
        while input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            match key.to_string().as_str() {
                "path" => path = Some(input.parse::<LitStr>()?),
                "args" => args = Some(input.parse::<Expr>()?),
                "returns" => returns = Some(input.parse::<Expr>()?),
                "retry" => retry = Some(input.parse::<Expr>()?),
                "access" => access = Some(input.parse::<Expr>()?),
                other => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                            "unknown key `{other}` (expected path, args, returns, retry, access)"
                        ),
                    ));
                }
            }
        }
        let path = path
            .ok_or_else(|| syn::Error::new(kind.span(), "missing `path = \"dir/file:export\"`"))?;
        Ok(Self {
            kind,
            path,
            args,
            returns,
            retry,
            access,
        })
    }
}

/// Declares a Connvo function; see the crate docs.
#[proc_macro_attribute]
pub fn function(attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr = parse_macro_input!(attr as Attr);
    let func = parse_macro_input!(item as ItemFn);
    let (visibility, finish) = match attr.kind.to_string().as_str() {
        "query" => (quote!(Public), quote!(query)),
        "mutation" => (quote!(Public), quote!(mutation)),
        "action" => (quote!(Public), quote!(action)),
        "internal_query" => (quote!(Internal), quote!(query)),
        "internal_mutation" => (quote!(Internal), quote!(mutation)),
        "internal_action" => (quote!(Internal), quote!(action)),
        other => {
            return syn::Error::new(attr.kind.span(), format!("unknown function kind `{other}`"))
                .to_compile_error()
                .into();
        }
    };
    let mut doc_lines = Vec::new();
    for a in &func.attrs {
        if let Meta::NameValue(nv) = &a.meta
            && nv.path.is_ident("doc")
            && let Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) = &nv.value
        {
            let line = s.value();
            doc_lines.push(line.strip_prefix(' ').map(str::to_owned).unwrap_or(line));
        }
    }
    let doc = doc_lines.join("\n");
    let name = &func.sig.ident;
    let spec_fn = format_ident!("{}_spec", name);
    let path = &attr.path;
    let args = attr.args.map(|e| quote!(.args(#e))).unwrap_or_default();
    let returns = attr
        .returns
        .map(|e| quote!(.returns(#e)))
        .unwrap_or_default();
    let retry = attr.retry.map(|e| quote!(.retry(#e))).unwrap_or_default();
    let finish = match (&attr.access, finish.to_string().as_str()) {
        (None, _) => quote!(#finish(#name)),
        (Some(access), "query") => quote!(query_with_access(#access, #name)),
        (Some(access), _) => {
            return syn::Error::new_spanned(access, "`access` applies to queries only")
                .to_compile_error()
                .into();
        }
    };
    let vis = &func.vis;
    let spec_doc = format!("The registration of [`{name}`] (`{}`).", path.value());
    quote! {
        #func

        #[doc = #spec_doc]
        #vis fn #spec_fn() -> ::runtime::FunctionSpec {
            ::runtime::FunctionDef::new(#path, ::runtime::Visibility::#visibility)
                #args
                #returns
                #retry
                .doc(#doc)
                .#finish
        }
    }
    .into()
}
