//! The shard pool: the same rules with shards on worker threads, submitted to concurrently.

use std::sync::Arc;

use wagate_durable::workers::{Command, Consent, Reply, ShardPool};
use wagate_rules::contact_events::InboundContent;
use wagate_rules::{
    ConsentChange, ConsentSource, Decision, DeferReason, EngineConfig, InboundMessage, Message,
    Profile, SendRequest, TemplateSend, TextParam,
};
use wagate_test_support::*;

fn pool(shards: usize) -> (ShardPool, wagate_rules::ManualClock) {
    let mut config = EngineConfig::new(Profile::whatsapp_2021());
    config.shards = shards;
    let fixture = Fixture::with_config(config);
    (ShardPool::start(fixture.engine), fixture.clock)
}

fn template(i: u64) -> Command {
    Command::Decide(SendRequest {
        number: NUMBER,
        to: person(i),
        message: Message::Template(TemplateSend::new(
            "order_update",
            "en_US",
            vec![TextParam::positional("x")],
        )),
        options: Default::default(),
    })
}

#[test]
fn concurrent_submitters_on_two_shards_admit_exactly_the_limit() {
    let (pool, _clock) = pool(2);
    let pool = Arc::new(pool);
    // One kind of command, answered in its own type.
    let opt_ins: Vec<Consent> = (0..3_000)
        .map(|i| Consent {
            number: NUMBER,
            person: person(i),
            change: ConsentChange::OptIn,
            source: ConsentSource::Api,
            evidence: None,
            after_erasure: false,
        })
        .collect();
    let answers: Vec<Result<(), wagate_rules::Refusal>> = pool.submit(opt_ins).unwrap();
    assert!(answers.iter().all(Result::is_ok));

    let submitters: Vec<_> = (0..3u64)
        .map(|part| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let mut tally = (0u32, 0u32);
                for chunk in (part * 1_000..(part + 1) * 1_000)
                    .collect::<Vec<_>>()
                    .chunks(128)
                {
                    for reply in pool
                        .submit(chunk.iter().map(|i| template(*i)).collect())
                        .unwrap()
                    {
                        match reply {
                            Reply::Decision(Decision::Accepted(_)) => tally.0 += 1,
                            Reply::Decision(Decision::Deferred {
                                reason: DeferReason::TierLimit,
                                ..
                            }) => tally.1 += 1,
                            other => panic!("{other:?}"),
                        }
                    }
                }
                tally
            })
        })
        .collect();
    let (accepted, deferred) = submitters
        .into_iter()
        .map(|s| s.join().unwrap())
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert_eq!((accepted, deferred), (1_000, 2_000));
    assert_eq!(pool.usage(NUMBER).unwrap().used_24h, 1_000);
    assert_eq!(
        pool.ledger().sum(Some(NUMBER), None, None).micros,
        1_000 * 50_000
    );
    let pool = Arc::into_inner(pool).unwrap();
    let shards = pool.shutdown();
    assert_eq!(shards.len(), 2);
    assert_eq!(shards.iter().map(|s| s.contacts()).sum::<usize>(), 3_000);
    assert!(
        shards.iter().all(|s| s.contacts() > 1_000),
        "persons spread over both shards"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_submitters_each_get_their_own_replies_in_order() {
    let (pool, _clock) = pool(2);
    let pool = Arc::new(pool);
    // Half the batches read "inbound, then a reply", half "a reply, then inbound": a reply
    // routed to another batch, or out of its batch's order, shows as the wrong kind or outcome.
    let tasks: Vec<_> = (0..64u64)
        .map(|task| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let inbound_first = task % 2 == 0;
                let mut batch = Vec::new();
                for i in task * 10..task * 10 + 10 {
                    let inbound = Command::Inbound(InboundMessage {
                        number: NUMBER,
                        from: person(i),
                        content: InboundContent::Text("hi".into()),
                        referral: false,
                    });
                    let reply = Command::Decide(SendRequest {
                        number: NUMBER,
                        to: person(i),
                        message: Message::text("reply"),
                        options: Default::default(),
                    });
                    if inbound_first {
                        batch.extend([inbound, reply]);
                    } else {
                        batch.extend([reply, inbound]);
                    }
                }
                let replies = pool.send_to_task(batch).wait_each().await;
                assert_eq!(replies.len(), 20);
                for pair in replies.chunks(2) {
                    let (inbound, decision) = if inbound_first {
                        (&pair[0], &pair[1])
                    } else {
                        (&pair[1], &pair[0])
                    };
                    assert!(matches!(inbound, Ok(Reply::Inbound(Ok(_)))), "{inbound:?}");
                    assert!(
                        matches!(
                            (inbound_first, decision),
                            (true, Ok(Reply::Decision(Decision::Accepted(_))))
                                | (false, Ok(Reply::Decision(Decision::Refused(_))))
                        ),
                        "{decision:?}"
                    );
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    Arc::into_inner(pool).unwrap().shutdown();
}

#[test]
fn a_persons_commands_apply_in_submission_order() {
    let (pool, _clock) = pool(3);
    let mut batch = Vec::new();
    for i in 0..50 {
        batch.push(Command::Decide(SendRequest {
            number: NUMBER,
            to: person(i),
            message: Message::text("early"),
            options: Default::default(),
        }));
        batch.push(Command::Inbound(InboundMessage {
            number: NUMBER,
            from: person(i),
            content: InboundContent::Text("hi".into()),
            referral: false,
        }));
        batch.push(Command::Decide(SendRequest {
            number: NUMBER,
            to: person(i),
            message: Message::text("reply"),
            options: Default::default(),
        }));
    }
    let replies = pool.submit(batch).unwrap();
    for triple in replies.chunks(3) {
        assert!(
            matches!(&triple[0], Reply::Decision(Decision::Refused(_))),
            "{:?}",
            triple[0]
        );
        assert!(matches!(&triple[1], Reply::Inbound(Ok(_))));
        assert!(
            matches!(&triple[2], Reply::Decision(Decision::Accepted(_))),
            "{:?}",
            triple[2]
        );
    }
    pool.shutdown();
}

#[test]
fn idle_workers_expire_counted_recipients_on_their_own() {
    let (pool, clock) = pool(2);
    let setup: Vec<Command> = (0..10)
        .map(|i| Command::Consent {
            number: NUMBER,
            person: person(i),
            change: ConsentChange::OptIn,
            source: ConsentSource::Api,
        })
        .chain((0..10).map(template))
        .collect();
    pool.submit(setup).unwrap();
    assert_eq!(pool.usage(NUMBER).unwrap().used_24h, 10);
    clock.advance_secs(DAY);
    // No traffic: each worker's idle tick expires its share; usage reads the shared counter.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let scope = pool.registry().number(NUMBER).unwrap().scope.clone();
    while scope.used() != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "idle ticks never expired the recipients"
        );
        std::thread::yield_now();
    }
    assert_eq!(pool.usage(NUMBER).unwrap().used_24h, 0);
    pool.shutdown();
}
