//! Rule 3: templates. The lifecycle per profile, time-driven transitions, and the send-time
//! checks on status, parameters, header media and buttons.

use wagate_rules::registry::RegistryError;
use wagate_rules::template::lint::LintRule;
use wagate_rules::template::model::{
    ButtonParam, ButtonParamValue, HeaderParam, MediaKind, ParameterFormat,
};
use wagate_rules::{
    Category, Message, Profile, Quality, Refusal, SendRequest, TemplateDefinition, TemplateSend,
    TemplateStatus, TextParam,
};
use wagate_test_support::*;

fn set(f: &Fixture, name: &str, status: TemplateStatus) -> Result<TemplateStatus, RegistryError> {
    f.engine
        .registry()
        .set_template_status(ACCOUNT, name, "en_US", status, f.now_secs())
}

fn quality(f: &Fixture, name: &str, quality: Quality) -> TemplateStatus {
    f.engine
        .registry()
        .set_template_quality(ACCOUNT, name, "en_US", quality, f.now_secs())
        .unwrap()
}

fn submit(f: &Fixture, name: &str) {
    let definition = TemplateDefinition::new(
        ACCOUNT,
        name,
        "en_US",
        Category::Marketing,
        "Hi {{1}}, a deal for you.",
    );
    f.engine
        .registry()
        .submit_template(definition, f.now_secs())
        .unwrap();
}

#[test]
fn only_the_profiles_transitions_are_legal() {
    let f = Fixture::new(Profile::whatsapp_2021());
    submit(&f, "fresh");
    let error = set(&f, "fresh", TemplateStatus::Approved).unwrap_err();
    assert!(
        error.to_string().contains("submitted to approved"),
        "{error}"
    );
    assert!(
        set(&f, "promo", TemplateStatus::Paused).is_err(),
        "2021 has no pausing"
    );
    assert_eq!(
        set(&f, "promo", TemplateStatus::Flagged),
        Ok(TemplateStatus::Flagged)
    );

    let f = Fixture::new(Profile::whatsapp_2025());
    submit(&f, "fresh");
    assert_eq!(
        set(&f, "fresh", TemplateStatus::Approved),
        Ok(TemplateStatus::Approved)
    );
    assert!(
        set(&f, "promo", TemplateStatus::Flagged).is_err(),
        "2025 has no flagging"
    );
    assert!(set(&f, "promo", TemplateStatus::InReview).is_err());
}

#[test]
fn unapproved_unknown_and_rejected_templates_get_132001() {
    for profile in profiles() {
        let mut f = Fixture::new(profile);
        let ana = person(1);
        f.opt_in(ana);
        submit(&f, "pending");
        for name in ["pending", "nonexistent"] {
            assert_eq!(
                refusal_code(&f.send_template(ana, name)),
                Some(132_001),
                "{name}"
            );
        }
        let wrong_language = f.engine.decide(&SendRequest {
            number: NUMBER,
            to: ana,
            message: Message::Template(TemplateSend::new(
                "promo",
                "pt_BR",
                vec![TextParam::positional("x")],
            )),
            options: Default::default(),
        });
        assert_eq!(refusal_code(&wrong_language), Some(132_001));
        set(&f, "pending", TemplateStatus::InReview).unwrap();
        set(&f, "pending", TemplateStatus::Rejected).unwrap();
        assert_eq!(
            f.send_template(ana, "pending").refusal(),
            Some(&Refusal::TemplateNotApproved(TemplateStatus::Rejected))
        );
    }
}

#[test]
fn a_flagged_template_recovering_on_day_6_is_approved_again() {
    let mut f = Fixture::new(Profile::whatsapp_2021());
    let ana = person(1);
    f.opt_in(ana);
    assert_eq!(quality(&f, "promo", Quality::Red), TemplateStatus::Flagged);
    assert!(
        f.send_template(ana, "promo").is_accepted(),
        "flagged templates stay sendable"
    );
    f.advance(6 * DAY);
    assert_eq!(
        quality(&f, "promo", Quality::Green),
        TemplateStatus::Approved
    );
    f.advance(3 * DAY);
    assert!(f.send_template(ana, "promo").is_accepted());
}

#[test]
fn a_flagged_template_not_recovered_by_day_8_is_disabled() {
    let mut f = Fixture::new(Profile::whatsapp_2021());
    let ana = person(1);
    f.opt_in(ana);
    quality(&f, "promo", Quality::Red);
    f.advance(7 * DAY - 1);
    assert!(
        f.send_template(ana, "promo").is_accepted(),
        "still within 7 days"
    );
    f.advance(DAY + 1);
    assert_eq!(refusal_code(&f.send_template(ana, "promo")), Some(132_016));
    assert_eq!(
        quality(&f, "promo", Quality::Green),
        TemplateStatus::Disabled,
        "too late to recover"
    );
}

#[test]
fn low_quality_pauses_3_hours_then_6_then_disables_under_2025() {
    let mut f = Fixture::new(Profile::whatsapp_2025());
    let ana = person(1);
    f.opt_in(ana);
    assert_eq!(quality(&f, "promo", Quality::Red), TemplateStatus::Paused);
    assert_eq!(refusal_code(&f.send_template(ana, "promo")), Some(132_015));
    f.advance(3 * HOUR - 1);
    assert_eq!(refusal_code(&f.send_template(ana, "promo")), Some(132_015));
    f.advance(1);
    assert!(
        f.send_template(ana, "promo").is_accepted(),
        "the first pause lasts exactly 3 h"
    );

    assert_eq!(quality(&f, "promo", Quality::Red), TemplateStatus::Paused);
    f.advance(3 * HOUR);
    assert_eq!(
        refusal_code(&f.send_template(ana, "promo")),
        Some(132_015),
        "the second lasts 6 h"
    );
    f.advance(3 * HOUR);
    assert!(f.send_template(ana, "promo").is_accepted());

    assert_eq!(quality(&f, "promo", Quality::Red), TemplateStatus::Disabled);
    f.advance(DAY);
    assert_eq!(refusal_code(&f.send_template(ana, "promo")), Some(132_016));
}

#[test]
fn low_quality_under_2021_flags_and_under_2025_pauses_never_the_other() {
    let f = Fixture::new(Profile::whatsapp_2021());
    assert_eq!(
        quality(&f, "order_update", Quality::Red),
        TemplateStatus::Flagged
    );
    let f = Fixture::new(Profile::whatsapp_2025());
    assert_eq!(
        quality(&f, "order_update", Quality::Red),
        TemplateStatus::Paused
    );
}

#[test]
fn an_edit_sends_an_approved_template_back_to_review() {
    for profile in profiles() {
        let mut f = Fixture::new(profile);
        let ana = person(1);
        f.opt_in(ana);
        submit(&f, "promo");
        assert_eq!(refusal_code(&f.send_template(ana, "promo")), Some(132_001));
        let again = TemplateDefinition::new(
            ACCOUNT,
            "promo",
            "en_US",
            Category::Marketing,
            "Hi {{1}}, v3.",
        );
        let error = f
            .engine
            .registry()
            .submit_template(again, f.now_secs())
            .unwrap_err();
        assert!(matches!(error, RegistryError::Transition(_)), "{error}");
    }
}

#[test]
fn submission_returns_the_lint_findings() {
    let f = Fixture::new(Profile::whatsapp_2021());
    let definition = TemplateDefinition::new(
        ACCOUNT,
        "bad",
        "en_US",
        Category::Marketing,
        "{{1}} see http://bit.ly/x",
    );
    let (_, findings) = f
        .engine
        .registry()
        .submit_template(definition, f.now_secs())
        .unwrap();
    let rules: Vec<_> = findings.iter().map(|f| f.rule).collect();
    assert!(rules.contains(&LintRule::VariableAtEdge), "{rules:?}");
    assert!(rules.contains(&LintRule::InsecureLink));
    assert!(rules.contains(&LintRule::LinkShortener));
}

fn rich_send(
    header: Option<HeaderParam>,
    body: Vec<TextParam>,
    buttons: Vec<ButtonParam>,
) -> Message {
    Message::Template(TemplateSend {
        name: "pickup".into(),
        language: "en_US".into(),
        header,
        body,
        buttons,
    })
}

fn image(link: Option<&str>) -> Option<HeaderParam> {
    Some(HeaderParam::Media {
        kind: MediaKind::Image,
        link: link.map(str::to_string),
    })
}

fn suffix(index: usize) -> ButtonParam {
    ButtonParam {
        index,
        value: ButtonParamValue::UrlSuffix("abc".into()),
    }
}

#[test]
fn send_checks_parameters_media_and_buttons() {
    for profile in profiles() {
        let mut f = Fixture::new(profile);
        f.approve(rich_template("pickup"));
        let ana = person(1);
        f.opt_in(ana);
        let two = || vec![TextParam::positional("Ana"), TextParam::positional("A-17")];
        let payload = ButtonParam {
            index: 0,
            value: ButtonParamValue::Payload("THANKS".into()),
        };
        let cases: Vec<(Message, Option<u32>)> = vec![
            (
                rich_send(
                    image(Some("https://cdn.example.com/a.PNG?v=2")),
                    two(),
                    vec![payload.clone(), suffix(1)],
                ),
                None,
            ),
            (rich_send(image(None), two(), vec![suffix(1)]), None),
            (
                rich_send(
                    image(None),
                    vec![TextParam::positional("Ana")],
                    vec![suffix(1)],
                ),
                Some(132_000),
            ),
            (
                rich_send(
                    image(None),
                    vec![TextParam::named("name", "Ana"), TextParam::positional("x")],
                    vec![suffix(1)],
                ),
                Some(132_012),
            ),
            (rich_send(None, two(), vec![suffix(1)]), Some(132_012)),
            (
                rich_send(
                    Some(HeaderParam::Media {
                        kind: MediaKind::Document,
                        link: None,
                    }),
                    two(),
                    vec![suffix(1)],
                ),
                Some(132_012),
            ),
            (
                rich_send(
                    image(Some("https://cdn.example.com/a.gif")),
                    two(),
                    vec![suffix(1)],
                ),
                Some(131_053),
            ),
            (rich_send(image(None), two(), vec![]), Some(132_000)),
            (
                rich_send(image(None), two(), vec![suffix(0)]),
                Some(131_009),
            ),
            (
                rich_send(image(None), two(), vec![suffix(1), suffix(5)]),
                Some(131_009),
            ),
            (
                rich_send(image(None), two(), vec![suffix(1), suffix(1)]),
                Some(131_009),
            ),
        ];
        for (index, (message, expected)) in cases.into_iter().enumerate() {
            let decision = f.engine.decide(&SendRequest {
                number: NUMBER,
                to: ana,
                message,
                options: Default::default(),
            });
            assert_eq!(
                refusal_code(&decision),
                expected,
                "case {index} under {}: {decision:?}",
                f.profile_name()
            );
            f.advance(10);
        }
    }
}

#[test]
fn named_templates_need_their_names() {
    let mut f = Fixture::new(Profile::whatsapp_2025());
    let mut definition = TemplateDefinition::new(
        ACCOUNT,
        "named",
        "en_US",
        Category::Utility,
        "Hi {{first_name}}, ready.",
    );
    definition.parameter_format = ParameterFormat::Named;
    f.approve(definition);
    let ana = person(1);
    f.opt_in(ana);
    let send = |params| Message::Template(TemplateSend::new("named", "en_US", params));
    for (params, expected) in [
        (vec![TextParam::named("first_name", "Ana")], None),
        (vec![TextParam::named("last_name", "Ana")], Some(132_012)),
        (vec![TextParam::positional("Ana")], Some(132_012)),
        (vec![], Some(132_000)),
    ] {
        let decision = f.engine.decide(&SendRequest {
            number: NUMBER,
            to: ana,
            message: send(params),
            options: Default::default(),
        });
        assert_eq!(refusal_code(&decision), expected, "{decision:?}");
        f.advance(10);
    }
}

#[test]
fn a_template_keeps_its_latest_status_and_quality_changes_with_their_times() {
    let f = Fixture::new(Profile::whatsapp_2025());
    // Red quality pauses an approved template for 3 h; the pause ends on its own.
    let paused_at = f.now_secs();
    assert_eq!(quality(&f, "promo", Quality::Red), TemplateStatus::Paused);
    f.advance(3 * 3_600);
    let template = f
        .engine
        .registry()
        .template(ACCOUNT, "promo", "en_US")
        .unwrap();
    assert_eq!(
        template.status(&f.engine.registry().profile().templates, f.now_secs()),
        TemplateStatus::Approved
    );
    let history = template.snapshot().history;
    let steps: Vec<(u32, TemplateStatus, Quality)> = history
        .iter()
        .map(|c| (c.at, c.status, c.quality))
        .collect();
    // The fixture's review and approval, then Meta's quality and what it did.
    assert_eq!(
        steps[..2].iter().map(|s| s.1).collect::<Vec<_>>(),
        [TemplateStatus::InReview, TemplateStatus::Approved]
    );
    assert_eq!(
        steps[2..],
        [
            (paused_at, TemplateStatus::Paused, Quality::Red),
            // The pause's end, at its time, not when it was next read.
            (
                paused_at + 3 * 3_600,
                TemplateStatus::Approved,
                Quality::Red
            ),
        ]
    );
    // Kept across a restore, and only the latest 16.
    for _ in 0..20 {
        quality(&f, "promo", Quality::Green);
        quality(&f, "promo", Quality::Yellow);
    }
    let snapshot = template.snapshot();
    assert_eq!(snapshot.history.len(), 16);
    assert_eq!(
        snapshot.history.last().map(|c| c.quality),
        Some(Quality::Yellow)
    );
    let restored = wagate_rules::registered_template::Template::restored(
        template.definition.clone(),
        &snapshot,
    );
    assert_eq!(restored.snapshot().history, snapshot.history);
}
