use super::*;
use proptest::prelude::*;

/// `e` with every range set to `0..0`, to compare shapes alone.
fn bare(e: &Expr) -> Expr {
    let loc = |path: &[Located]| -> Vec<Located> {
        path.iter()
            .map(|l| Located {
                segment: l.segment.clone(),
                range: 0..0,
            })
            .collect()
    };
    let kind = match &e.kind {
        ExprKind::Ref(r) => ExprKind::Ref(Reference {
            context: r.context,
            path: loc(&r.path),
            range: 0..0,
        }),
        ExprKind::Param(p) => ExprKind::Param(p.clone()),
        ExprKind::Lit(l) => ExprKind::Lit(l.clone()),
        ExprKind::Unary(op, x) => ExprKind::Unary(*op, Box::new(bare(x))),
        ExprKind::Binary(op, l, r) => ExprKind::Binary(*op, Box::new(bare(l)), Box::new(bare(r))),
        ExprKind::Call { func, args, .. } => ExprKind::Call {
            func: *func,
            name: 0..0,
            args: args.iter().map(bare).collect(),
        },
        ExprKind::Lambda { param, body } => ExprKind::Lambda {
            param: param.clone(),
            body: Box::new(bare(body)),
        },
        ExprKind::Access(base, path) => ExprKind::Access(Box::new(bare(base)), loc(path)),
    };
    Expr { kind, range: 0..0 }
}

/// Every range in `e` (nodes, references, segments, function names).
fn ranges(e: &Expr, out: &mut Vec<Range<usize>>) {
    out.push(e.range.clone());
    match &e.kind {
        ExprKind::Ref(r) => {
            out.push(r.range.clone());
            out.extend(r.path.iter().map(|l| l.range.clone()));
        }
        ExprKind::Param(_) | ExprKind::Lit(_) => {}
        ExprKind::Unary(_, x) => ranges(x, out),
        ExprKind::Binary(_, l, r) => {
            ranges(l, out);
            ranges(r, out);
        }
        ExprKind::Call { name, args, .. } => {
            out.push(name.clone());
            for a in args {
                ranges(a, out);
            }
        }
        ExprKind::Lambda { body, .. } => ranges(body, out),
        ExprKind::Access(base, path) => {
            ranges(base, out);
            out.extend(path.iter().map(|l| l.range.clone()));
        }
    }
}

#[test]
fn parses_references_table() {
    for (text, want) in [
        ("${{ inputs.source }}", "inputs.source"),
        (
            "${{steps.song.outputs.clips[1].clip_id}}",
            "steps.song.outputs.clips[1].clip_id",
        ),
        ("  ${{ item }}  ", "item"),
        ("${{ item.clip_id }}", "item.clip_id"),
        ("${{ matrix['idea'] }}", "matrix.idea"),
        ("${{ matrix['two words'] }}", "matrix['two words']"),
        (
            "${{ steps.cover-1.outputs.clips [ 0 ] }}",
            "steps.cover-1.outputs.clips[0]",
        ),
        ("${{ env.REGION }}", "env.REGION"),
        (
            "${{ steps.covers.outputs[ * ].clip_id }}",
            "steps.covers.outputs[*].clip_id",
        ),
    ] {
        let t = parse_template(text).unwrap();
        assert_eq!(t.whole_reference().unwrap().to_string(), want, "{text}");
    }
}

#[test]
fn parses_expression_forms_table() {
    for (text, want) in [
        ("${{ 1 + 2 * 3 }}", "1 + 2 * 3"),
        ("${{ (1 + 2) * 3 }}", "(1 + 2) * 3"),
        ("${{ 1 - (2 - 3) }}", "1 - (2 - 3)"),
        ("${{ a_b }}", "ERR"),
        (
            "${{ !(inputs.a == 'x') && inputs.n >= 2 || false }}",
            "!(inputs.a == 'x') && inputs.n >= 2 || false",
        ),
        ("${{ -inputs.n % 4 }}", "-inputs.n % 4"),
        ("${{ \"it's\" }}", "'it''s'"),
        ("${{ 'say ''hi''' }}", "'say ''hi'''"),
        ("${{ 'a }} b' }}", "'a }} b'"),
        ("${{ null != 1.5 }}", "null != 1.5"),
        (
            "${{ format('{0}, live', inputs.style) }}",
            "format('{0}, live', inputs.style)",
        ),
        (
            "${{ filter(steps.song.outputs.clips, c => c.duration > 90 && startsWith(c.title, 'A')) }}",
            "filter(steps.song.outputs.clips, c => c.duration > 90 && startsWith(c.title, 'A'))",
        ),
        (
            "${{ max_by(steps.song.outputs.clips, c => c.duration).clip_id }}",
            "max_by(steps.song.outputs.clips, c => c.duration).clip_id",
        ),
        (
            "${{ (steps.song.outputs.clips)[0] }}",
            "steps.song.outputs.clips[0]",
        ),
        ("${{ (1 + 2).x }}", "(1 + 2).x"),
        ("${{ join(inputs.l) }}", "join(inputs.l)"),
        (
            "${{ filter(inputs.l, item => item == matrix.x) }}",
            "filter(inputs.l, item => item == matrix.x)",
        ),
        (
            "${{ sort_by(filter(inputs.l, x => length(filter(x.l, y => y > x.n)) > 0), x => x.n)[0] }}",
            "sort_by(filter(inputs.l, x => length(filter(x.l, y => y > x.n)) > 0), x => x.n)[0]",
        ),
    ] {
        match parse_template(text) {
            Ok(t) => assert_eq!(t.whole().unwrap().to_string(), want, "{text}"),
            Err(e) => assert_eq!(want, "ERR", "{text}: {e:?}"),
        }
    }
}

#[test]
fn precedence_and_associativity() {
    let t = parse_template("${{ 1 - 2 - 3 == 4 || !true && false }}").unwrap();
    let ExprKind::Binary(BinOp::Or, l, r) = &t.whole().unwrap().kind else {
        panic!("{t:?}")
    };
    assert!(matches!(l.kind, ExprKind::Binary(BinOp::Eq, ..)));
    let ExprKind::Binary(BinOp::Eq, sub, _) = &l.kind else {
        unreachable!()
    };
    let ExprKind::Binary(BinOp::Sub, first, _) = &sub.kind else {
        panic!("{sub:?}")
    };
    assert!(matches!(first.kind, ExprKind::Binary(BinOp::Sub, ..)));
    let ExprKind::Binary(BinOp::And, not, _) = &r.kind else {
        panic!("{r:?}")
    };
    assert!(matches!(not.kind, ExprKind::Unary(UnOp::Not, _)));
}

#[test]
fn references_include_every_context_reference_and_no_parameters() {
    let text = "${{ filter(steps.a.outputs.clips, c => c.duration > inputs.min && contains(matrix.tags, c.title)) }} and ${{ item.x }}";
    let t = parse_template(text).unwrap();
    let refs: Vec<String> = t.references().map(|r| r.to_string()).collect();
    assert_eq!(
        refs,
        [
            "steps.a.outputs.clips",
            "inputs.min",
            "matrix.tags",
            "item.x"
        ]
    );
    for r in t.references() {
        assert_eq!(&text[r.range.clone()], r.to_string());
    }
    assert!(t.whole().is_none());
    assert!(!t.is_literal());
}

#[test]
fn interpolation_keeps_text_and_offsets() {
    let text = "song about ${{ matrix.idea }}, take ${{ inputs.n }}!";
    let t = parse_template(text).unwrap();
    assert!(t.whole().is_none());
    let refs: Vec<_> = t.references().collect();
    assert_eq!(refs.len(), 2);
    assert_eq!(&text[refs[0].range.clone()], "matrix.idea");
    assert_eq!(&text[refs[0].path[0].range.clone()], "idea");
    assert_eq!(t.parts[0], Part::Text("song about ".into()));
    assert!(parse_template("plain text").unwrap().is_literal());
    let t = parse_template("${{ 1 + 1 }}").unwrap();
    assert!(t.whole().is_some() && t.whole_reference().is_none());
}

#[test]
fn errors_table() {
    for (text, message, at, help) in [
        (
            "${{ steps.x",
            "`${{` is never closed",
            "${{ steps.x",
            "end the expression with `}}`",
        ),
        (
            "${{ }}",
            "the expression is empty",
            "",
            "write a reference such as `inputs.source`",
        ),
        (
            "${{ step.x }}",
            "unknown context `step`",
            "step",
            "did you mean `steps`?",
        ),
        (
            "${{ steps..x }}",
            "expected a name after `.`, found `.`",
            ".",
            "",
        ),
        (
            "${{ steps.x[ }}",
            "expected an index, `*` or a quoted key after `[`, found the end of the expression",
            "",
            "",
        ),
        (
            "${{ steps.x[0 }}",
            "expected `]`, found the end of the expression",
            "",
            "close the index with `]`",
        ),
        (
            "${{ steps.x[1.5] }}",
            "index `1.5` is not a whole number",
            "1.5",
            "",
        ),
        ("${{ a[\"b }}", "a string is never closed", "\"b }}", ""),
        (
            "${{ 'abc }}",
            "a string is never closed",
            "'abc }}",
            "end the string with `'` (write `''` for a `'` inside it)",
        ),
        (
            "${{ steps.x[99999999999999999999999] }}",
            "index `99999999999999999999999` is too large",
            "99999999999999999999999",
            "",
        ),
        (
            "${{ lenght(inputs.l) }}",
            "unknown function `lenght`",
            "lenght",
            "did you mean `length`?",
        ),
        (
            "${{ startswith(inputs.s, 'a') }}",
            "unknown function `startswith`",
            "startswith",
            "did you mean `startsWith`?",
        ),
        (
            "${{ inputs.n = 3 }}",
            "`=` is not an operator",
            "=",
            "compare with `==`",
        ),
        (
            "${{ inputs.a & inputs.b }}",
            "`&` is not an operator",
            "&",
            "write `&&`",
        ),
        (
            "${{ inputs.a | inputs.b }}",
            "`|` is not an operator",
            "|",
            "write `||`",
        ),
        (
            "${{ inputs.a and inputs.b }}",
            "unexpected `and` in expression",
            "and",
            "combine conditions with `&&` and `||`",
        ),
        (
            "${{ (1 + 2 }}",
            "`(` is never closed",
            "(",
            "add the `)` that closes it",
        ),
        ("${{ (1 + 2 3) }}", "expected `)`, found `3`", "3", ""),
        (
            "${{ 1 + 2) }}",
            "unexpected `)` in expression",
            ")",
            "remove this `)` or add the `(` it closes",
        ),
        (
            "${{ length(inputs.l }}",
            "the `(` of `length(` is never closed",
            "(",
            "close the arguments with `)`",
        ),
        (
            "${{ 1 + }}",
            "expected a value, found the end of the expression",
            "",
            "",
        ),
        ("${{ 1 + # }}", "unexpected `#` in expression", "#", ""),
        (
            "${{ x => x > 1 }}",
            "a lambda `x => …` is only allowed as an argument of filter/find/sort_by/max_by/min_by",
            "x =>",
            "",
        ),
        (
            "${{ length(x => x) }}",
            "a lambda `x => …` is only allowed as an argument of filter/find/sort_by/max_by/min_by",
            "x =>",
            "",
        ),
        (
            "${{ filter(inputs.l, inputs.x) }}",
            "`filter` needs a lambda as argument 2",
            "inputs.x",
            "write `filter(list, x => cond)`",
        ),
        (
            "${{ length(inputs.l, 2) }}",
            "`length` takes 1 argument, but is given 2",
            "length(inputs.l, 2)",
            "write `length(x)`",
        ),
        (
            "${{ filter(inputs.l) }}",
            "`filter` takes 2 arguments, but is given 1",
            "filter(inputs.l)",
            "",
        ),
        (
            "${{ filter(inputs.l, c => d.x) }}",
            "unknown name `d`",
            "d",
            "a reference starts with one of: steps, inputs, matrix, item, env, c",
        ),
        (
            "${{ filter(inputs.l, clip => clp.x) }}",
            "unknown name `clp`",
            "clp",
            "did you mean `clip`?",
        ),
        ("${{ inputs.n 2 }}", "unexpected `2` in expression", "2", ""),
    ] {
        let err = parse_template(text).expect_err(text);
        assert_eq!(err.message, message, "{text}");
        assert_eq!(&text[err.range.clone()], at, "{text}");
        if !help.is_empty() {
            assert_eq!(err.help, help, "{text}");
        }
    }
}

#[test]
fn numbers_beyond_f64_are_refused() {
    let digits = "9".repeat(400);
    let err = parse_template(&format!("${{{{ {digits} }}}}")).unwrap_err();
    assert_eq!(err.message, format!("the number `{digits}` is too large"));
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for text in [
        format!("${{{{ {} }}}}", "(".repeat(10_000)),
        format!("${{{{ {}1{} }}}}", "(".repeat(10_000), ")".repeat(10_000)),
        format!("${{{{ {}true }}}}", "!".repeat(10_000)),
        format!("${{{{ {}1 }}}}", "-".repeat(10_000)),
        format!(
            "${{{{ {}inputs.l{} }}}}",
            "first(".repeat(10_000),
            ")".repeat(10_000)
        ),
    ] {
        let err = parse_template(&text).unwrap_err();
        assert!(err.message.contains("nests too deeply"), "{}", err.message);
    }
    let long = format!("${{{{ 1{} }}}}", " + 1".repeat(10_000));
    let err = parse_template(&long).unwrap_err();
    assert!(err.message.contains("too long"), "{}", err.message);
    let fine = format!("${{{{ {}1{} }}}}", "(".repeat(40), ")".repeat(40));
    assert!(parse_template(&fine).is_ok());
}

#[test]
fn the_function_table_is_consistent() {
    let mut names = std::collections::HashSet::new();
    for s in FUNCTIONS {
        assert!(names.insert(s.name), "{} twice", s.name);
        assert_eq!(s.func.signature().name, s.name);
        assert!(s.required <= s.params.len(), "{}", s.name);
        assert!(s.usage.starts_with(s.name), "{}", s.name);
    }
    assert_eq!(
        Func::lambda_takers(),
        ["filter", "find", "sort_by", "max_by", "min_by"]
    );
}

#[test]
fn the_readme_lists_every_function_as_the_table_says() {
    let readme = include_str!("../../README.md");
    let table = function_table();
    assert!(
        readme.contains(&table),
        "the README's function table differs from the code; it should read:\n{table}"
    );
}

/// Generated expressions of the shapes the parser produces.
fn arb_expr() -> impl Strategy<Value = Expr> {
    let e = |kind| Expr { kind, range: 0..0 };
    let field = prop_oneof![
        4 => "[a-z_][a-z0-9_-]{0,5}".prop_map(Segment::Field),
        1 => "[ a-z']{0,4}".prop_map(Segment::Field),
        1 => (0usize..20).prop_map(Segment::Index),
        1 => Just(Segment::Each),
    ]
    .prop_map(|segment| Located {
        segment,
        range: 0..0,
    });
    let reference =
        (0usize..5, proptest::collection::vec(field.clone(), 0..4)).prop_map(move |(c, path)| {
            e(ExprKind::Ref(Reference {
                context: Context::ALL[c],
                path,
                range: 0..0,
            }))
        });
    let lit = prop_oneof![
        Just(Lit::Null),
        any::<bool>().prop_map(Lit::Bool),
        (0u32..100_000).prop_map(|n| Lit::Num(f64::from(n))),
        (0.0f64..1e6).prop_map(Lit::Num),
        "\\PC{0,6}".prop_map(Lit::Str),
    ]
    .prop_map(move |l| e(ExprKind::Lit(l)));
    let leaf = prop_oneof![reference, lit, Just(e(ExprKind::Param("x".into())))];
    leaf.prop_recursive(4, 24, 3, move |inner| {
        let ops = [
            BinOp::Or,
            BinOp::And,
            BinOp::Eq,
            BinOp::Ne,
            BinOp::Lt,
            BinOp::Le,
            BinOp::Gt,
            BinOp::Ge,
            BinOp::Add,
            BinOp::Sub,
            BinOp::Mul,
            BinOp::Div,
            BinOp::Rem,
        ];
        let call = (
            0..FUNCTIONS.len(),
            proptest::collection::vec(inner.clone(), 3),
        )
            .prop_map(move |(f, pool)| {
                let s = &FUNCTIONS[f];
                let n = if s.variadic {
                    s.required + 1
                } else {
                    s.params.len()
                };
                let args = (0..n)
                    .map(|i| {
                        let a = pool[i % pool.len()].clone();
                        if s.func.param(i).is_some_and(Param::is_lambda) {
                            e(ExprKind::Lambda {
                                param: "x".into(),
                                body: Box::new(a),
                            })
                        } else {
                            a
                        }
                    })
                    .collect();
                e(ExprKind::Call {
                    func: s.func,
                    name: 0..0,
                    args,
                })
            });
        prop_oneof![
            (0..ops.len(), inner.clone(), inner.clone())
                .prop_map(move |(o, l, r)| e(ExprKind::Binary(ops[o], Box::new(l), Box::new(r)))),
            (any::<bool>(), inner.clone()).prop_map(move |(not, x)| e(ExprKind::Unary(
                if not { UnOp::Not } else { UnOp::Neg },
                Box::new(x)
            ))),
            call,
            (inner, proptest::collection::vec(field.clone(), 1..3)).prop_map(
                move |(base, path)| {
                    match base.kind {
                        ExprKind::Ref(mut r) => {
                            r.path.extend(path);
                            e(ExprKind::Ref(r))
                        }
                        ExprKind::Access(b, mut p) => {
                            p.extend(path);
                            e(ExprKind::Access(b, p))
                        }
                        kind => e(ExprKind::Access(Box::new(e(kind)), path)),
                    }
                }
            ),
        ]
    })
}

/// Wraps a generated expression so that its `x` parameters are in scope.
fn in_lambda(body: Expr) -> Expr {
    let e = |kind| Expr { kind, range: 0..0 };
    e(ExprKind::Call {
        func: Func::Filter,
        name: 0..0,
        args: vec![
            e(ExprKind::Ref(Reference {
                context: Context::Inputs,
                path: vec![],
                range: 0..0,
            })),
            e(ExprKind::Lambda {
                param: "x".into(),
                body: Box::new(body),
            }),
        ],
    })
}

proptest! {
    #[test]
    fn never_panics_and_ranges_are_in_bounds(text in "\\PC{0,60}") {
        check_ranges(&text)?;
    }

    #[test]
    fn token_soups_never_panic(parts in proptest::collection::vec(
        prop_oneof![Just("${{"), Just("}}"), Just("steps"), Just("."), Just("["), Just("]"), Just("("), Just(")"),
                    Just("0"), Just("1.5"), Just("*"), Just("'"), Just("\""), Just(" "), Just("é"), Just("item"),
                    Just("x"), Just("=>"), Just("=="), Just("="), Just("!"), Just("&&"), Just("||"), Just("-"),
                    Just(","), Just("filter"), Just("max_by"), Just("format"), Just("'{0}'"), Just("<"), Just("%")], 0..24)) {
        let text: String = parts.concat();
        check_ranges(&text)?;
    }

    #[test]
    fn display_round_trips(expr in arb_expr()) {
        let expr = in_lambda(expr);
        let text = format!("${{{{ {expr} }}}}");
        let parsed = parse_template(&text);
        prop_assert!(parsed.is_ok(), "{text}: {parsed:?}");
        let parsed = parsed.unwrap();
        let again = parsed.whole().unwrap();
        prop_assert_eq!(bare(again), bare(&expr), "{}", text);
        prop_assert_eq!(again.to_string(), expr.to_string());
        let mut all = Vec::new();
        ranges(again, &mut all);
        for r in all {
            prop_assert!(r.start <= r.end && r.end <= text.len());
        }
    }
}

fn check_ranges(text: &str) -> Result<(), TestCaseError> {
    let ok = |r: &Range<usize>| {
        r.start <= r.end
            && r.end <= text.len()
            && text.is_char_boundary(r.start)
            && text.is_char_boundary(r.end)
    };
    match parse_template(text) {
        Ok(t) => {
            for e in t.expressions() {
                let mut all = Vec::new();
                ranges(e, &mut all);
                for r in all {
                    prop_assert!(ok(&r), "{r:?} in {text:?}");
                }
            }
        }
        Err(e) => prop_assert!(ok(&e.range), "{:?} in {text:?}", e.range),
    }
    Ok(())
}
