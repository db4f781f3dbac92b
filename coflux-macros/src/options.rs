//! Parsing of the attribute arguments (`#[task(retries = 3, cache(...))]`) into [`Options`], and
//! their expansion into a `StepOptions` expression.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::parse::ParseStream;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Lit, LitStr, Path, Token, bracketed, token};

/// The top-level options, in the order they are listed in errors.
const OPTIONS: &[&str] = &[
    "name",
    "module",
    "retries",
    "cache",
    "memo",
    "defer",
    "delay_ms",
    "timeout_ms",
    "requires",
    "wait_for",
    "recurrent",
    "crate",
];
const RETRIES_OPTIONS: &[&str] = &["limit", "backoff_min_ms", "backoff_max_ms"];
const CACHE_OPTIONS: &[&str] = &["params", "max_age_ms", "namespace", "version"];
const SELECTION_OPTIONS: &[&str] = &["params"];

/// Backoff of `retries = true`, as in Coflux: 1 s before the first retry, growing to 60 s.
const UNLIMITED_BACKOFF_MIN_MS: u64 = 1_000;
const UNLIMITED_BACKOFF_MAX_MS: u64 = 60_000;

/// Which parameters make up a key.
enum Selection {
    All(bool),
    Indexes(Vec<u32>),
}

struct Retries {
    limit: Option<u32>,
    backoff_min_ms: u64,
    backoff_max_ms: u64,
}

struct Cache {
    params: Selection,
    max_age_ms: Option<u64>,
    namespace: Option<String>,
    version: Option<String>,
}

/// The parsed attribute. For the step options, the outer `Option` records whether the option was
/// given at all (to reject duplicates and to leave the default alone); an inner `None` is an
/// explicit `= false`.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) krate: Option<Path>,
    pub(crate) name: Option<String>,
    pub(crate) module: Option<String>,
    retries: Option<Option<Retries>>,
    cache: Option<Option<Cache>>,
    memo: Option<Option<Selection>>,
    defer: Option<Option<Selection>>,
    delay_ms: Option<u64>,
    timeout_ms: Option<u64>,
    requires: Option<Vec<(String, Vec<String>)>>,
    wait_for: Option<Vec<u32>>,
    recurrent: Option<bool>,
}

/// Parses the attribute's arguments; `params` are the function's parameter names, used to
/// resolve parameter names in `params = [...]` and `wait_for = [...]`.
pub(crate) fn parse(attr: TokenStream, params: &[String]) -> syn::Result<Options> {
    let mut options = Options::default();
    let parser = syn::meta::parser(|meta| options.parse_one(&meta, params));
    syn::parse::Parser::parse2(parser, attr)?;
    Ok(options)
}

impl Options {
    fn parse_one(&mut self, meta: &ParseNestedMeta, params: &[String]) -> syn::Result<()> {
        let key = key_of(meta);
        match key.as_str() {
            "name" => {
                check_unset(meta, &key, self.name.is_some())?;
                self.name = Some(non_empty_string(meta)?);
            }
            "module" => {
                check_unset(meta, &key, self.module.is_some())?;
                self.module = Some(non_empty_string(meta)?);
            }
            "crate" => {
                check_unset(meta, &key, self.krate.is_some())?;
                let lit: LitStr = meta.value()?.parse()?;
                self.krate = Some(lit.parse()?);
            }
            "retries" => {
                check_unset(meta, &key, self.retries.is_some())?;
                self.retries = Some(parse_retries(meta)?);
            }
            "cache" => {
                check_unset(meta, &key, self.cache.is_some())?;
                self.cache = Some(parse_cache(meta, params)?);
            }
            "memo" => {
                check_unset(meta, &key, self.memo.is_some())?;
                self.memo = Some(parse_selection_option(meta, "memo", params)?);
            }
            "defer" => {
                check_unset(meta, &key, self.defer.is_some())?;
                self.defer = Some(parse_selection_option(meta, "defer", params)?);
            }
            "delay_ms" => {
                check_unset(meta, &key, self.delay_ms.is_some())?;
                self.delay_ms = Some(parse_int(meta.value()?)?);
            }
            "timeout_ms" => {
                check_unset(meta, &key, self.timeout_ms.is_some())?;
                self.timeout_ms = Some(parse_int(meta.value()?)?);
            }
            "requires" => {
                check_unset(meta, &key, self.requires.is_some())?;
                self.requires = Some(parse_requires(meta)?);
            }
            "wait_for" => {
                check_unset(meta, &key, self.wait_for.is_some())?;
                self.wait_for = Some(parse_param_list(meta.value()?, params)?);
            }
            "recurrent" => {
                check_unset(meta, &key, self.recurrent.is_some())?;
                self.recurrent = Some(parse_flag(meta)?);
            }
            _ => return Err(unknown(meta, &key, "option", OPTIONS)),
        }
        Ok(())
    }

    /// The `StepOptions` expression, with paths under `krate`.
    pub(crate) fn step_options(&self, krate: &TokenStream) -> TokenStream {
        let model = quote!(#krate::model);
        let mut fields = Vec::new();
        if let Some(retries) = &self.retries {
            let value = option(retries.as_ref().map(|r| {
                let limit = option(r.limit.map(|l| quote!(#l)));
                let (min, max) = (r.backoff_min_ms, r.backoff_max_ms);
                quote!(#model::RetryPolicy { limit: #limit, backoff_min_ms: #min, backoff_max_ms: #max })
            }));
            fields.push(quote!(retries: #value));
        }
        if let Some(cache) = &self.cache {
            let value = option(cache.as_ref().map(|c| {
                let params = selection(&model, &c.params);
                let max_age = option(c.max_age_ms.map(|m| quote!(#m)));
                let namespace = option(c.namespace.as_deref().map(string));
                let version = option(c.version.as_deref().map(string));
                quote!(#model::CacheConfig {
                    params: #params,
                    max_age_ms: #max_age,
                    namespace: #namespace,
                    version: #version,
                })
            }));
            fields.push(quote!(cache: #value));
        }
        if let Some(memo) = &self.memo {
            let value = option(memo.as_ref().map(|s| selection(&model, s)));
            fields.push(quote!(memo: #value));
        }
        if let Some(defer) = &self.defer {
            let value = option(defer.as_ref().map(|s| {
                let params = selection(&model, s);
                quote!(#model::DeferConfig { params: #params })
            }));
            fields.push(quote!(defer: #value));
        }
        if let Some(delay) = self.delay_ms {
            fields.push(quote!(delay_ms: ::core::option::Option::Some(#delay)));
        }
        if let Some(timeout) = self.timeout_ms {
            fields.push(quote!(timeout_ms: ::core::option::Option::Some(#timeout)));
        }
        if let Some(requires) = &self.requires {
            let entries = requires.iter().map(|(key, values)| {
                let key = string(key);
                let values = values.iter().map(|v| string(v));
                quote!((#key, ::std::vec![#(#values),*]))
            });
            fields.push(quote!(requires: ::std::collections::BTreeMap::from([#(#entries),*])));
        }
        if let Some(wait_for) = &self.wait_for {
            fields.push(quote!(wait_for: ::std::vec![#(#wait_for),*]));
        }
        if let Some(recurrent) = self.recurrent {
            fields.push(quote!(recurrent: #recurrent));
        }
        if fields.is_empty() {
            quote!(<#model::StepOptions as ::core::default::Default>::default())
        } else {
            quote!(#model::StepOptions { #(#fields,)* ..::core::default::Default::default() })
        }
    }
}

fn key_of(meta: &ParseNestedMeta) -> String {
    match meta.path.get_ident() {
        Some(ident) => ident.unraw().to_string(),
        None => meta.path.to_token_stream().to_string().replace(' ', ""),
    }
}

fn check_unset(meta: &ParseNestedMeta, key: &str, set: bool) -> syn::Result<()> {
    if set {
        Err(meta.error(format!("duplicate option `{key}`")))
    } else {
        Ok(())
    }
}

fn unknown(meta: &ParseNestedMeta, key: &str, what: &str, accepted: &[&str]) -> syn::Error {
    let accepted = accepted
        .iter()
        .map(|a| format!("`{a}`"))
        .collect::<Vec<_>>()
        .join(", ");
    meta.error(format!(
        "unknown {what} `{key}`; expected one of: {accepted}"
    ))
}

/// Whether the option is written bare (`cache`), as opposed to `cache = ...` or `cache(...)`.
fn is_bare(meta: &ParseNestedMeta) -> bool {
    meta.input.is_empty() || meta.input.peek(Token![,])
}

fn non_empty_string(meta: &ParseNestedMeta) -> syn::Result<String> {
    let lit: LitStr = meta.value()?.parse()?;
    let value = lit.value();
    if value.trim().is_empty() {
        return Err(syn::Error::new(lit.span(), "expected a non-empty string"));
    }
    Ok(value)
}

fn parse_int<N>(input: ParseStream) -> syn::Result<N>
where
    N: std::str::FromStr,
    N::Err: std::fmt::Display,
{
    let lit: Lit = input.parse()?;
    match &lit {
        Lit::Int(int) => int.base10_parse(),
        other => Err(syn::Error::new(other.span(), "expected an integer literal")),
    }
}

/// `flag`, `flag = true` or `flag = false`.
fn parse_flag(meta: &ParseNestedMeta) -> syn::Result<bool> {
    if is_bare(meta) {
        return Ok(true);
    }
    let lit: syn::LitBool = meta.value()?.parse()?;
    Ok(lit.value)
}

/// `retries = 3`, `retries = true/false`, or `retries(limit = 3, backoff_min_ms = .., backoff_max_ms = ..)`.
fn parse_retries(meta: &ParseNestedMeta) -> syn::Result<Option<Retries>> {
    if meta.input.peek(token::Paren) {
        let mut limit = None;
        let mut min = None;
        let mut max = None;
        meta.parse_nested_meta(|inner| {
            let key = key_of(&inner);
            match key.as_str() {
                "limit" => {
                    check_unset(&inner, &key, limit.is_some())?;
                    limit = Some(parse_int::<u32>(inner.value()?)?);
                }
                "backoff_min_ms" => {
                    check_unset(&inner, &key, min.is_some())?;
                    min = Some((parse_int::<u64>(inner.value()?)?, inner.path.span()));
                }
                "backoff_max_ms" => {
                    check_unset(&inner, &key, max.is_some())?;
                    max = Some(parse_int::<u64>(inner.value()?)?);
                }
                _ => return Err(unknown(&inner, &key, "`retries` option", RETRIES_OPTIONS)),
            }
            Ok(())
        })?;
        let backoff_min_ms = min.map_or(0, |(m, _)| m);
        let backoff_max_ms = max.unwrap_or(backoff_min_ms);
        if let Some((_, span)) = min
            && backoff_min_ms > backoff_max_ms
        {
            return Err(syn::Error::new(
                span,
                "`backoff_min_ms` must not exceed `backoff_max_ms`",
            ));
        }
        return Ok(Some(Retries {
            limit,
            backoff_min_ms,
            backoff_max_ms,
        }));
    }
    if is_bare(meta) {
        return Err(meta.error(
            "`retries` needs a value: `retries = 3`, `retries = true` (unlimited) or \
             `retries(limit = 3, backoff_min_ms = 1000, backoff_max_ms = 60000)`",
        ));
    }
    let lit: Lit = meta.value()?.parse()?;
    match &lit {
        Lit::Int(int) => Ok(Some(Retries {
            limit: Some(int.base10_parse()?),
            backoff_min_ms: 0,
            backoff_max_ms: 0,
        })),
        Lit::Bool(b) if b.value => Ok(Some(Retries {
            limit: None,
            backoff_min_ms: UNLIMITED_BACKOFF_MIN_MS,
            backoff_max_ms: UNLIMITED_BACKOFF_MAX_MS,
        })),
        Lit::Bool(_) => Ok(None),
        other => Err(syn::Error::new(
            other.span(),
            "expected a retry limit (integer) or `true`/`false`",
        )),
    }
}

/// `cache`, `cache = true/false`, or `cache(params = .., max_age_ms = .., namespace = "..", version = "..")`.
fn parse_cache(meta: &ParseNestedMeta, params: &[String]) -> syn::Result<Option<Cache>> {
    let mut cache = Cache {
        params: Selection::All(true),
        max_age_ms: None,
        namespace: None,
        version: None,
    };
    if !meta.input.peek(token::Paren) {
        return Ok(parse_flag(meta)?.then_some(cache));
    }
    let mut seen = Vec::new();
    meta.parse_nested_meta(|inner| {
        let key = key_of(&inner);
        check_unset(&inner, &key, seen.contains(&key))?;
        match key.as_str() {
            "params" => cache.params = parse_selection(inner.value()?, params)?,
            "max_age_ms" => cache.max_age_ms = Some(parse_int(inner.value()?)?),
            "namespace" => cache.namespace = Some(non_empty_string(&inner)?),
            "version" => {
                let lit: Lit = inner.value()?.parse()?;
                cache.version = Some(match &lit {
                    Lit::Str(s) => s.value(),
                    Lit::Int(i) => i.base10_digits().to_owned(),
                    other => {
                        return Err(syn::Error::new(
                            other.span(),
                            "expected a string or integer literal",
                        ));
                    }
                });
            }
            _ => return Err(unknown(&inner, &key, "`cache` option", CACHE_OPTIONS)),
        }
        seen.push(key);
        Ok(())
    })?;
    Ok(Some(cache))
}

/// `memo`/`defer`: bare, `= true/false`, or `(params = ..)`.
fn parse_selection_option(
    meta: &ParseNestedMeta,
    option: &str,
    params: &[String],
) -> syn::Result<Option<Selection>> {
    if !meta.input.peek(token::Paren) {
        return Ok(parse_flag(meta)?.then_some(Selection::All(true)));
    }
    let mut selection = None;
    meta.parse_nested_meta(|inner| {
        let key = key_of(&inner);
        if key != "params" {
            return Err(unknown(
                &inner,
                &key,
                &format!("`{option}` option"),
                SELECTION_OPTIONS,
            ));
        }
        check_unset(&inner, &key, selection.is_some())?;
        selection = Some(parse_selection(inner.value()?, params)?);
        Ok(())
    })?;
    Ok(Some(selection.unwrap_or(Selection::All(true))))
}

/// `true`/`false` (all or no parameters), or a list as in [`parse_param_list`].
fn parse_selection(input: ParseStream, params: &[String]) -> syn::Result<Selection> {
    if input.peek(syn::LitBool) {
        let lit: syn::LitBool = input.parse()?;
        return Ok(Selection::All(lit.value));
    }
    parse_param_list(input, params).map(Selection::Indexes)
}

/// `["name", 2]` or a single `"name"` / `2`: parameters by name or 0-based index.
fn parse_param_list(input: ParseStream, params: &[String]) -> syn::Result<Vec<u32>> {
    let lits: Vec<Lit> = if input.peek(token::Bracket) {
        let content;
        bracketed!(content in input);
        Punctuated::<Lit, Token![,]>::parse_terminated(&content)?
            .into_iter()
            .collect()
    } else {
        vec![input.parse()?]
    };
    let mut indexes: Vec<u32> = Vec::with_capacity(lits.len());
    for lit in &lits {
        let index = match lit {
            Lit::Str(s) => {
                let name = s.value();
                match params.iter().position(|p| *p == name) {
                    Some(i) => i,
                    None => {
                        let known = if params.is_empty() {
                            "the function has no parameters".to_owned()
                        } else {
                            let names = params.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>();
                            format!("the parameters are {}", names.join(", "))
                        };
                        return Err(syn::Error::new(
                            s.span(),
                            format!("unknown parameter `{name}`; {known}"),
                        ));
                    }
                }
            }
            Lit::Int(int) => {
                let index: usize = int.base10_parse()?;
                if index >= params.len() {
                    return Err(syn::Error::new(
                        int.span(),
                        format!(
                            "parameter index {index} is out of range (the function has {} parameter{})",
                            params.len(),
                            if params.len() == 1 { "" } else { "s" }
                        ),
                    ));
                }
                index
            }
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "expected a parameter name (string) or 0-based index (integer)",
                ));
            }
        };
        let index =
            u32::try_from(index).map_err(|_| syn::Error::new(lit.span(), "too many parameters"))?;
        if indexes.contains(&index) {
            return Err(syn::Error::new(
                lit.span(),
                format!("parameter `{}` is listed twice", params[index as usize]),
            ));
        }
        indexes.push(index);
    }
    Ok(indexes)
}

/// `requires(key = "value", key = ["a", "b"], ...)`; values may also be integer or bool literals.
fn parse_requires(meta: &ParseNestedMeta) -> syn::Result<Vec<(String, Vec<String>)>> {
    if !meta.input.peek(token::Paren) {
        return Err(meta.error("expected `requires(key = \"value\", other = [\"a\", \"b\"])`"));
    }
    let mut entries: Vec<(String, Vec<String>)> = Vec::new();
    meta.parse_nested_meta(|inner| {
        let key = match inner.path.get_ident() {
            Some(ident) => ident.unraw().to_string(),
            None => return Err(inner.error("expected a tag name")),
        };
        if entries.iter().any(|(k, _)| *k == key) {
            return Err(inner.error(format!("duplicate tag `{key}`")));
        }
        if !inner.input.peek(Token![=]) {
            return Err(inner.error(format!(
                "expected `{key} = \"value\"` or `{key} = [\"a\", \"b\"]`"
            )));
        }
        let input = inner.value()?;
        let lits: Vec<Lit> = if input.peek(token::Bracket) {
            let content;
            bracketed!(content in input);
            let lits: Vec<Lit> = Punctuated::<Lit, Token![,]>::parse_terminated(&content)?
                .into_iter()
                .collect();
            if lits.is_empty() {
                return Err(inner.error(format!("tag `{key}` needs at least one value")));
            }
            lits
        } else {
            vec![input.parse()?]
        };
        let values = lits
            .iter()
            .map(|lit| match lit {
                Lit::Str(s) => Ok(s.value()),
                Lit::Int(i) => Ok(i.base10_digits().to_owned()),
                Lit::Bool(b) => Ok(b.value.to_string()),
                other => Err(syn::Error::new(
                    other.span(),
                    "expected a string, integer or bool literal",
                )),
            })
            .collect::<syn::Result<Vec<_>>>()?;
        entries.push((key, values));
        Ok(())
    })?;
    Ok(entries)
}

fn option(value: Option<TokenStream>) -> TokenStream {
    match value {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    }
}

fn string(value: &str) -> TokenStream {
    quote!(::std::string::String::from(#value))
}

fn selection(model: &TokenStream, selection: &Selection) -> TokenStream {
    match selection {
        Selection::All(all) => quote!(#model::ParamSelection::All(#all)),
        Selection::Indexes(indexes) => {
            quote!(#model::ParamSelection::Indexes(::std::vec![#(#indexes),*]))
        }
    }
}
