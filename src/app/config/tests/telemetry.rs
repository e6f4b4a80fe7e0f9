//! `OTEL_*`: export only with an endpoint, the specification's defaults.

use super::*;

#[test]
fn otlp_export_is_on_only_with_an_endpoint() {
    let off = settings(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]).unwrap();
    assert!(off.otel.is_none());
    let grpc = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4317/")])
        .unwrap()
        .otel
        .unwrap();
    assert_eq!(grpc.endpoint, "http://jaeger:4317");
    assert_eq!(grpc.protocol, OtlpProtocol::Grpc);
    assert_eq!(grpc.service_name, "smap-identity");
    let http = settings(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://otel.example.com"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_SERVICE_NAME", "identity-eu"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=staging, region = eu-1",
        ),
    ])
    .unwrap()
    .otel
    .unwrap();
    assert_eq!(http.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(http.service_name, "identity-eu");
    assert_eq!(
        grpc.sampler,
        TraceSampler::ParentBased(ParentlessSampler::AlwaysOn)
    );
    let sampled = settings(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4317"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
    ])
    .unwrap()
    .otel
    .unwrap();
    assert_eq!(
        sampled.sampler,
        TraceSampler::ParentBased(ParentlessSampler::Ratio(0.1))
    );
    assert_eq!(
        http.resource_attributes,
        vec![
            ("deployment.environment.name".into(), "staging".into()),
            ("region".into(), "eu-1".into())
        ]
    );
}
