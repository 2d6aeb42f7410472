using System.Diagnostics.Tracing;
using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Tracing;
using Microsoft.Diagnostics.Tracing.Parsers;
using Microsoft.Diagnostics.Tracing.Parsers.Clr;

namespace ReaperProxy.LoadTest;

/// <summary>
/// A small stand-in for dotnet-counters and dotnet-gcdump (not installable here): attaches to a .NET
/// process over its diagnostics socket (EventPipe), reads the <c>System.Runtime</c> counters for a few
/// seconds and, with <c>--induce-gc</c>, enables the runtime's GC-heap-collect keyword, which makes the
/// target run one full blocking GC, and reports the heap sizes that GC left (the live managed heap).
/// </summary>
internal static class RuntimeStats
{
    private const long GcHeapCollectKeyword = 0x800000;

    public static async Task<int> RunAsync(Options options)
    {
        var pid = options.Int("pid", 0);
        var seconds = options.Int("seconds", 3, max: 60);
        var induceGc = options.Flag("induce-gc");

        var providers = new List<EventPipeProvider>
        {
            new("System.Runtime", EventLevel.Informational, 0, new Dictionary<string, string> { ["EventCounterIntervalSec"] = "1" }),
        };
        if (induceGc)
        {
            providers.Add(new("Microsoft-Windows-DotNETRuntime", EventLevel.Informational,
                (long)ClrTraceEventParser.Keywords.GC | GcHeapCollectKeyword));
        }

        var counters = new Dictionary<string, double>(StringComparer.Ordinal);
        GcHeap? heap = null;
        var inducedGcSeen = false;
        var client = new DiagnosticsClient(pid);
        using var session = client.StartEventPipeSession(providers, requestRundown: false);
        using var source = new EventPipeEventSource(session.EventStream);
        source.Dynamic.All += e =>
        {
            if (e.EventName != "EventCounters" || e.PayloadValue(0) is not IDictionary<string, object> outer ||
                !outer.TryGetValue("Payload", out var inner) || inner is not IDictionary<string, object> payload ||
                !payload.TryGetValue("Name", out var nameValue) || nameValue is not string name)
            {
                return;
            }

            var value = payload.TryGetValue("Mean", out var mean) ? mean : payload.TryGetValue("Increment", out var increment) ? increment : null;
            if (value is not null)
            {
                lock (counters)
                {
                    counters[name] = Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture);
                }
            }
        };
        source.Clr.GCStart += e =>
        {
            if (e.Reason == GCReason.Induced)
            {
                inducedGcSeen = true;
            }
        };
        source.Clr.GCHeapStats += e =>
        {
            if (inducedGcSeen && heap is null)
            {
                heap = new GcHeap(e.TotalHeapSize, e.GenerationSize0, e.GenerationSize1, e.GenerationSize2, e.GenerationSize3, e.GenerationSize4, e.GCHandleCount, e.PinnedObjectCount);
            }
        };

        var processing = Task.Run(() => source.Process());
        await Task.Delay(TimeSpan.FromSeconds(seconds + 0.5));
        await session.StopAsync(CancellationToken.None);
        await processing.WaitAsync(TimeSpan.FromSeconds(10));

        var result = new RuntimeStatsResult(pid, new SortedDictionary<string, double>(counters, StringComparer.Ordinal), heap);
        Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(result, JsonContext.Default.RuntimeStatsResult));
        return counters.Count > 0 && (!induceGc || heap is not null) ? 0 : 1;
    }
}

/// <summary>Heap sizes (bytes) right after the induced full GC; gen3 is the LOH, gen4 the POH.</summary>
internal sealed record GcHeap(long TotalHeapSize, long Gen0, long Gen1, long Gen2, long Loh, long Poh, long GcHandles, long PinnedObjects);

internal sealed record RuntimeStatsResult(int Pid, SortedDictionary<string, double> Counters, GcHeap? HeapAfterFullGc);
