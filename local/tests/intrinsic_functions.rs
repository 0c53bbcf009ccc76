//! Every intrinsic function against the AWS documentation's examples and the behaviours AWS
//! recorded for it.

use macie_pipeline_local::sfn::expr::env::{Env, Variables};
use macie_pipeline_local::sfn::expr::intrinsics::parse;
use serde_json::{Value, json};

fn eval(expression: &str, input: Value) -> Result<Value, String> {
    let context =
        json!({"Execution": {"Name": "run-1"}, "StateMachine": {"Id": "arn", "Name": "m"}});
    let variables = Variables::from([("who".to_owned(), json!("Ana"))]);
    parse(expression)?.evaluate(&Env::new(&input, &context, &variables))
}

// Each case below is an example of the AWS documentation's intrinsic functions page or a
// behaviour AWS recorded for it.

#[test]
fn format_fills_placeholders_with_any_value() {
    assert_eq!(
        eval(
            "States.Format('Hello, my name is {}.', $.name)",
            json!({"name": "Arnav"})
        ),
        Ok(json!("Hello, my name is Arnav."))
    );
    assert_eq!(
        eval(
            "States.Format('Run {} has {} objects \\{literal\\}', $$.Execution.Name, $.n)",
            json!({"n": 3})
        ),
        Ok(json!("Run run-1 has 3 objects {literal}"))
    );
    assert_eq!(
        eval(
            "States.Format('{} and {}', $.o, $$.StateMachine)",
            json!({"o": {"Arg1": 1, "Arg2": []}})
        ),
        Ok(json!("{Arg1=1, Arg2=[]} and {Id=arn, Name=m}"))
    );
    assert_eq!(
        eval("States.Format('{} {}', null, 1.1)", json!({})),
        Ok(json!("null 1.1"))
    );
    assert_eq!(
        eval("States.Format('Hi {}', $who)", json!({})),
        Ok(json!("Hi Ana"))
    );
    assert!(parse("States.Format('{} {}', 'one')").is_err());
}

#[test]
fn json_conversions() {
    assert_eq!(
        eval(
            "States.StringToJson($.s)",
            json!({"s": "{\"foo\":\"bar\"}"})
        ),
        Ok(json!({"foo": "bar"}))
    );
    assert_eq!(eval("States.StringToJson('60')", json!({})), Ok(json!(60)));
    assert_eq!(
        eval("States.StringToJson($.s)", json!({"s": " "})),
        Ok(Value::Null)
    );
    assert!(eval("States.StringToJson($.s)", json!({"s": 1})).is_err());
    assert_eq!(
        eval("States.JsonToString($.o)", json!({"o": {"a": [1]}})),
        Ok(json!("{\"a\":[1]}"))
    );
    assert_eq!(
        eval(
            "States.JsonMerge($.a, $.b, false)",
            json!({"a": {"a": {"a1": 1}, "b": 2, "d": 3}, "b": {"a": {"a3": 1}, "c": 3, "d": 4}})
        ),
        Ok(json!({"a": {"a3": 1}, "b": 2, "c": 3, "d": 4}))
    );
    assert!(eval("States.JsonMerge($.a, $.a, true)", json!({"a": {}})).is_err());
}

#[test]
fn arrays() {
    assert_eq!(
        eval(
            "States.Array('Foo', 2022, $.someJson, null)",
            json!({"someJson": {"a": 1}})
        ),
        Ok(json!(["Foo", 2022, {"a": 1}, null]))
    );
    assert_eq!(eval("States.Array()", json!({})), Ok(json!([])));
    assert_eq!(
        eval(
            "States.ArrayPartition($.a, 4)",
            json!({"a": [1, 2, 3, 4, 5, 6, 7, 8, 9]})
        ),
        Ok(json!([[1, 2, 3, 4], [5, 6, 7, 8], [9]]))
    );
    assert_eq!(
        eval("States.ArrayPartition($.a, 2)", json!({"a": []})),
        Ok(json!([]))
    );
    assert_eq!(
        eval(
            "States.ArrayContains($.a, $.v)",
            json!({"a": [[1, 2, 3], 2], "v": [1, 2, 3]})
        ),
        Ok(json!(true))
    );
    assert_eq!(
        eval("States.ArrayRange(1, 9, 2)", json!({})),
        Ok(json!([1, 3, 5, 7, 9]))
    );
    assert_eq!(
        eval("States.ArrayRange(0, 10, 3)", json!({})),
        Ok(json!([0, 3, 6, 9]))
    );
    assert!(eval("States.ArrayRange(0, 1001, 1)", json!({})).is_err());
    assert_eq!(
        eval(
            "States.ArrayGetItem($.a, 5)",
            json!({"a": [1, 2, 3, 4, 5, 6, 7, 8, 9]})
        ),
        Ok(json!(6))
    );
    assert!(eval("States.ArrayGetItem($.a, 5)", json!({"a": []})).is_err());
    assert_eq!(
        eval("States.ArrayLength($.a)", json!({"a": [5, 6]})),
        Ok(json!(2))
    );
    assert_eq!(
        eval(
            "States.ArrayUnique($.a)",
            json!({"a": [1, 2, 3, 3, 3, 3, 3, 3, 4]})
        ),
        Ok(json!([1, 2, 3, 4]))
    );
}

#[test]
fn encodings_and_hashes() {
    assert_eq!(
        eval("States.Base64Encode('Data to encode')", json!({})),
        Ok(json!("RGF0YSB0byBlbmNvZGU="))
    );
    assert_eq!(
        eval("States.Base64Decode('RGF0YSB0byBlbmNvZGU=')", json!({})),
        Ok(json!("Data to encode"))
    );
    assert_eq!(
        eval("States.Hash('input data', 'SHA-1')", json!({})),
        Ok(json!("aaff4a450a104cd177d28d18d74485e8cae074b7"))
    );
    assert_eq!(
        eval("States.Hash('input data', 'MD5')", json!({})),
        Ok(json!("812f45842bc6d66ee14572ce20db8e86"))
    );
    assert!(eval("States.Hash('x', 'SHA-3')", json!({})).is_err());
}

#[test]
fn math_rounds_halves_up_as_aws_does() {
    for (a, b, sum) in [
        (json!(111), json!(-1), 110),
        (json!(1.49), json!(1.5), 3),
        (json!(-1.49), json!(-1.5), -2),
        (json!(-1.5), json!(-1.51), -3),
        (json!(2.5), json!(0), 3),
        (json!(-2.5), json!(0), -2),
        (json!(-0.5), json!(0.5), 1),
    ] {
        assert_eq!(
            eval("States.MathAdd($.a, $.b)", json!({"a": a, "b": b})),
            Ok(json!(sum)),
            "{a} + {b}"
        );
    }
    assert!(eval("States.MathAdd($.a, 1)", json!({"a": "1"})).is_err());
    let r = eval("States.MathRandom(12.5, 44.51)", json!({}))
        .unwrap()
        .as_i64()
        .unwrap();
    assert!((13..45).contains(&r), "{r}");
    assert!(
        eval("States.MathRandom(0, 999, 3)", json!({})).is_ok(),
        "with a seed"
    );
    assert!(eval("States.MathRandom(3, 3)", json!({})).is_err());
}

#[test]
fn strings_and_ids() {
    assert_eq!(
        eval("States.StringSplit($.s, ',')", json!({"s": ", , ,"})),
        Ok(json!([" ", " "]))
    );
    assert_eq!(
        eval(
            "States.StringSplit('This.is+a,test=string', '.+,=')",
            json!({})
        ),
        Ok(json!(["This", "is", "a", "test", "string"]))
    );
    assert_eq!(
        eval("States.UUID()", json!({}))
            .unwrap()
            .as_str()
            .unwrap()
            .len(),
        36
    );
    assert_eq!(
        eval(
            "States.ArrayGetItem(States.StringSplit($$.StateMachine.Name, '-'), 0)",
            json!({})
        ),
        Ok(json!("m"))
    );
}
