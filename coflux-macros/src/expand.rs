//! Checks the annotated function and generates the target: a unit struct named after the function,
//! with `run`/`submit`/`call` methods and an implementation of `coflux_core::sdk::Target`.

use proc_macro2::{Delimiter, Group, Ident, Literal, Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{
    Attribute, Expr, ExprLit, FnArg, GenericArgument, ItemFn, Lit, Meta, Pat, PathArguments,
    ReturnType, Type,
};

use crate::options;

/// Which macro is expanding.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Task,
    Workflow,
}

impl Kind {
    fn attribute(self) -> &'static str {
        match self {
            Self::Task => "#[task]",
            Self::Workflow => "#[workflow]",
        }
    }
}

/// A parameter of the function.
struct Param {
    /// The binding, without `mut`.
    ident: Ident,
    /// Its name as seen by Coflux (raw identifiers unescaped).
    name: String,
    ty: Type,
}

/// Expands the attribute. On error, emits the errors followed by the function unchanged, so the
/// errors are not buried under unrelated ones about the missing item.
pub(crate) fn expand(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(error) => {
            let error = syn::Error::new(
                error.span(),
                format!("{} applies to an `async fn`: {error}", kind.attribute()),
            )
            .to_compile_error();
            return quote!(#error #item);
        }
    };
    match expand_fn(kind, attr, &function) {
        Ok(tokens) => tokens,
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#error #function)
        }
    }
}

fn expand_fn(kind: Kind, attr: TokenStream, function: &ItemFn) -> syn::Result<TokenStream> {
    let (params, output) = check_signature(kind, function)?;
    let names: Vec<String> = params.iter().map(|p| p.name.clone()).collect();
    let options = options::parse(attr, &names)?;

    let krate = match &options.krate {
        Some(path) => path.to_token_stream(),
        None => quote!(::coflux_core),
    };
    let sdk = quote!(#krate::sdk);
    let model = quote!(#krate::model);

    let vis = &function.vis;
    let ident = &function.sig.ident;
    let target_name = options
        .name
        .clone()
        .unwrap_or_else(|| ident.unraw().to_string());
    let module = match &options.module {
        Some(module) => quote!(#module),
        None => quote!(::core::module_path!().replace("::", ".")),
    };
    let kind_variant = match kind {
        Kind::Task => quote!(#model::TargetKind::Task),
        Kind::Workflow => quote!(#model::TargetKind::Workflow),
    };

    let docs: Vec<&Attribute> = function
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .collect();
    let cfgs: Vec<&Attribute> = function
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .collect();
    let others: Vec<&Attribute> = function
        .attrs
        .iter()
        .filter(|a| !a.path().is_ident("doc") && !a.path().is_ident("cfg"))
        .collect();
    let instruction = match instruction(&function.attrs) {
        Some(text) => quote!(::core::option::Option::Some(::std::string::String::from(#text))),
        None => quote!(::core::option::Option::None),
    };
    let run_doc_separator = (!docs.is_empty()).then(|| quote!(#[doc = ""]));

    let idents: Vec<&Ident> = params.iter().map(|p| &p.ident).collect();
    let types: Vec<&Type> = params.iter().map(|p| &p.ty).collect();
    let run_inputs = &function.sig.inputs;
    let run_output = &function.sig.output;
    let body = &function.block;

    let parameters = params.iter().map(|p| {
        let name = &p.name;
        let annotation = type_string(&p.ty);
        quote! {
            #model::Parameter {
                name: ::std::string::String::from(#name),
                annotation: ::core::option::Option::Some(::std::string::String::from(#annotation)),
                default: ::core::option::Option::None,
            }
        }
    });
    let step_options = options.step_options(&krate);

    // Locals of the generated code that must not clash with parameter names.
    let arguments = Ident::new("arguments", Span::mixed_site());
    let iter = Ident::new("args", Span::mixed_site());
    // Trait errors (a parameter type that is not `Serialize`/`Deserialize`) point at the type.
    let encode_args = params.iter().map(|p| {
        let ident = &p.ident;
        respan(quote!(#sdk::encode_arg(&#ident)), p.ty.span())
    });
    let encoded = if params.is_empty() {
        quote!(::core::result::Result::Ok(::std::vec::Vec::new()))
    } else {
        quote! {
            ::core::iter::Iterator::collect(::core::iter::IntoIterator::into_iter([
                #(#encode_args),*
            ]))
        }
    };
    let decode = if params.is_empty() {
        quote!(::core::mem::drop(#arguments);)
    } else {
        let decodes = params.iter().enumerate().map(|(index, p)| {
            let (ident, ty, name) = (&p.ident, &p.ty, &p.name);
            let index = Literal::usize_unsuffixed(index);
            let mut arguments = Group::new(
                Delimiter::Parenthesis,
                quote!(::core::iter::Iterator::next(&mut #iter), #index, #name),
            );
            arguments.set_span(ty.span());
            let decode_arg = respan(quote!(#sdk::decode_arg), ty.span());
            quote! {
                let #ident: #ty = #decode_arg #arguments?;
            }
        });
        quote! {
            let mut #iter = ::core::iter::IntoIterator::into_iter(#arguments);
            #(#decodes)*
        }
    };
    let run = format_ident!("run");
    // Spanned on the return type, so an error type that is not `Into<Failure>` is reported there.
    let return_span = match &function.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => Span::call_site(),
    };

    let encode_result = respan(
        quote!(#sdk::encode_output(#ident::#run(#(#idents),*).await)),
        return_span,
    );

    Ok(quote! {
        #(#cfgs)*
        #(#docs)*
        #[allow(non_camel_case_types)]
        #[derive(
            ::core::clone::Clone,
            ::core::marker::Copy,
            ::core::fmt::Debug,
            ::core::default::Default,
        )]
        #vis struct #ident;

        #(#cfgs)*
        impl #ident {
            #(#others)*
            #(#docs)*
            #run_doc_separator
            /// Runs the body directly, without the orchestrator.
            #vis async fn #run(#run_inputs) #run_output #body

            /// Submits a child execution and returns a handle to await later (outside an
            /// execution, the body runs in place when the handle is awaited).
            #[allow(dead_code, clippy::too_many_arguments)]
            #vis fn submit(&self, #(#idents: #types),*) -> #sdk::Handle<#output> {
                #sdk::submit(self, #encoded)
            }

            /// Submits a child execution and waits for its result (outside an execution, runs
            /// the body in place).
            #[allow(dead_code, clippy::too_many_arguments)]
            #vis async fn call(&self, #(#idents: #types),*)
                -> ::core::result::Result<#output, #sdk::ExecutionError>
            {
                #sdk::call(self, #encoded).await
            }
        }

        #(#cfgs)*
        impl #sdk::Target for #ident {
            #[allow(clippy::needless_update)]
            fn definition(&self) -> #model::TargetDefinition {
                #model::TargetDefinition {
                    target: #model::TargetRef::new(#module, #target_name),
                    kind: #kind_variant,
                    parameters: ::std::vec![#(#parameters),*],
                    options: #step_options,
                    instruction: #instruction,
                }
            }

            fn invoke(&self, #arguments: ::std::vec::Vec<#model::Value>) -> #sdk::TargetFuture {
                ::std::boxed::Box::pin(async move {
                    #decode
                    #encode_result
                })
            }
        }
    })
}

/// Checks the signature; gives the parameters and `T` of the `Result<T, E>` return type.
fn check_signature(kind: Kind, function: &ItemFn) -> syn::Result<(Vec<Param>, Type)> {
    let sig = &function.sig;
    let attribute = kind.attribute();
    let mut errors: Vec<syn::Error> = Vec::new();
    let mut error = |span: Span, message: String| errors.push(syn::Error::new(span, message));

    if let Some(token) = &sig.constness {
        error(
            token.span,
            format!("{attribute} functions cannot be `const`"),
        );
    }
    if let Some(token) = &sig.unsafety {
        error(
            token.span,
            format!("{attribute} functions cannot be `unsafe`"),
        );
    }
    if let Some(abi) = &sig.abi {
        error(
            abi.span(),
            format!("{attribute} functions cannot have an ABI"),
        );
    }
    if sig.asyncness.is_none() {
        error(
            sig.fn_token.span,
            format!("{attribute} functions must be `async fn`"),
        );
    }
    if !sig.generics.params.is_empty() {
        error(
            sig.generics.params.span(),
            format!(
                "{attribute} functions cannot be generic: arguments are decoded into the declared \
                 parameter types, so the types must be concrete (and owned)"
            ),
        );
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        error(
            where_clause.span(),
            format!("{attribute} functions cannot have a `where` clause"),
        );
    }
    if let Some(variadic) = &sig.variadic {
        error(
            variadic.span(),
            format!("{attribute} functions cannot be variadic"),
        );
    }

    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => error(
                receiver.span(),
                format!(
                    "{attribute} cannot be used on methods: `self` parameters are not supported"
                ),
            ),
            FnArg::Typed(typed) => {
                let ident = match &*typed.pat {
                    Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                        Some(pat.ident.clone())
                    }
                    other => {
                        error(
                            other.span(),
                            format!("{attribute} parameters must be simple `name: Type` bindings"),
                        );
                        None
                    }
                };
                match &*typed.ty {
                    Type::Reference(reference) => error(
                        reference.span(),
                        format!(
                            "{attribute} parameters must be owned types (arguments are decoded from \
                             the orchestrator): use e.g. `String` instead of `&str`"
                        ),
                    ),
                    Type::ImplTrait(imp) => error(
                        imp.span(),
                        format!(
                            "{attribute} parameters cannot be `impl Trait`: use a concrete type"
                        ),
                    ),
                    _ => {}
                }
                if let Some(ident) = ident {
                    let name = ident.unraw().to_string();
                    if ident.unraw() == sig.ident.unraw() {
                        error(
                            ident.span(),
                            format!(
                                "parameter `{name}` has the name of the function, which {attribute} \
                                 turns into a unit struct that a parameter cannot shadow: rename the \
                                 function and keep the target's name with `name = \"{name}\"`"
                            ),
                        );
                    }
                    params.push(Param {
                        ident,
                        name,
                        ty: (*typed.ty).clone(),
                    });
                }
            }
        }
    }

    let output = match &sig.output {
        ReturnType::Default => {
            error(
                sig.paren_token.span.close(),
                format!(
                    "{attribute} functions must return `Result<T, E>` (e.g. `-> Result<String, Failure>`)"
                ),
            );
            None
        }
        ReturnType::Type(_, ty) => match result_output(ty) {
            Some(output) => Some(output),
            None => {
                error(
                    ty.span(),
                    format!(
                        "{attribute} functions must return `Result<T, E>` (or an alias whose last \
                         segment is `Result`, such as `std::io::Result<T>`), where `T` is the value \
                         and `E: Into<Failure>`"
                    ),
                );
                None
            }
        },
    };

    let mut errors = errors.into_iter();
    if let Some(mut first) = errors.next() {
        for other in errors {
            first.combine(other);
        }
        return Err(first);
    }
    // Without errors, `output` is set.
    match output {
        Some(output) => Ok((params, output)),
        None => Err(syn::Error::new(sig.span(), "missing return type")),
    }
}

/// `T` of a return type `...::Result<T, ...>`.
fn result_output(ty: &Type) -> Option<Type> {
    match ty {
        Type::Paren(inner) => result_output(&inner.elem),
        Type::Group(inner) => result_output(&inner.elem),
        Type::Path(path) if path.qself.is_none() => {
            let last = path.path.segments.last()?;
            if last.ident != "Result" {
                return None;
            }
            let PathArguments::AngleBracketed(args) = &last.arguments else {
                return None;
            };
            args.args.iter().find_map(|arg| match arg {
                GenericArgument::Type(ty) => Some(ty.clone()),
                _ => None,
            })
        }
        _ => None,
    }
}

/// The doc comment as plain text: common indentation removed, trailing spaces and surrounding
/// blank lines trimmed. `None` without (literal) doc comments.
fn instruction(attrs: &[Attribute]) -> Option<String> {
    let mut lines: Vec<String> = Vec::new();
    for attr in attrs {
        if !attr.path().is_ident("doc") {
            continue;
        }
        if let Meta::NameValue(nv) = &attr.meta
            && let Expr::Lit(ExprLit {
                lit: Lit::Str(text),
                ..
            }) = &nv.value
        {
            lines.extend(text.value().split('\n').map(|l| l.trim_end().to_owned()));
        }
    }
    let leading = |line: &str| line.chars().take_while(|c| c.is_whitespace()).count();
    let indent = lines
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| leading(l))
        .min()
        .unwrap_or(0);
    let text = lines
        .iter()
        .map(|l| l.chars().skip(indent).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n");
    let text = text.trim_matches('\n');
    (!text.is_empty()).then(|| text.to_owned())
}

/// A type as written, without the spaces `TokenStream::to_string` puts between all tokens
/// (`Vec < String >` → `Vec<String>`).
fn type_string(ty: &Type) -> String {
    let mut text = ty.to_token_stream().to_string();
    for (from, to) in [
        (" :: ", "::"),
        (":: ", "::"),
        (" ::", "::"),
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        (" , ", ", "),
        (" ,", ","),
        (" ; ", "; "),
        ("& ", "&"),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
    ] {
        text = text.replace(from, to);
    }
    text
}

/// `tokens` with every span set to `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let TokenTree::Group(group) = &tree {
                let mut inner = Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                tree = TokenTree::Group(inner);
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}
