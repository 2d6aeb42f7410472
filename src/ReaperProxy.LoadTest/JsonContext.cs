using System.Text.Json.Serialization;
using ReaperProxy.LoadTest.Soak;

namespace ReaperProxy.LoadTest;

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(IdleResult))]
[JsonSerializable(typeof(EchoResult))]
[JsonSerializable(typeof(RateResult))]
[JsonSerializable(typeof(ChurnResult))]
[JsonSerializable(typeof(RuntimeStatsResult))]
[JsonSerializable(typeof(BackendStats))]
[JsonSerializable(typeof(SlowReaderResult))]
[JsonSerializable(typeof(SoakResult))]
internal sealed partial class JsonContext : JsonSerializerContext;
