using System.Text.Json.Serialization;

namespace ReaperProxy.LoadTest;

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(IdleResult))]
[JsonSerializable(typeof(EchoResult))]
[JsonSerializable(typeof(RateResult))]
[JsonSerializable(typeof(ChurnResult))]
[JsonSerializable(typeof(RuntimeStatsResult))]
[JsonSerializable(typeof(BackendStats))]
[JsonSerializable(typeof(SlowReaderResult))]
internal sealed partial class JsonContext : JsonSerializerContext;
