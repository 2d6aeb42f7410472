using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using ReaperProxy.Configuration;
using ReaperProxy.Relay;

namespace ReaperProxy.Benchmarks;

/// <summary>
/// The relay's cost per frame against a plain pass-through of the same bytes, in both directions, the
/// way YARP's StreamCopier drives a stream: writes of at most 64 KiB (backend→client), and a zero-byte
/// read followed by a 64 KiB read (client→backend). One operation is one frame; no heartbeat ticks run,
/// so this is the steady-state cost of parsing headers on a busy connection. The relay's hot path must
/// allocate nothing: the Allocated column shows it.
/// </summary>
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory, BenchmarkLogicalGroupRule.ByParams)]
[CategoriesColumn]
public class RelayBenchmarks
{
    private const int CopyBufferSize = 64 * 1024;

    // Frames per benchmark invocation; results are per frame. 1024 × 64 B ≈ 66 KiB, 1024 × 64 KiB = 64 MiB.
    private const int FrameCount = 1024;
    private byte[] _serverFrames = [];
    private byte[] _clientFrames = [];
    private readonly byte[] _readBuffer = new byte[CopyBufferSize];
    private CountingStream _sink = null!;
    private RelayConnection _writeRelay = null!;
    private ReplayStream _source = null!;
    private ReplayStream _plainSource = null!;
    private RelayConnection _readRelay = null!;
    private ReaperSettingsMonitor _settings = null!;

    [Params(64, 64 * 1024)]
    public int PayloadSize { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _serverFrames = BuildFrames(FrameCount, PayloadSize, masked: false);
        _clientFrames = BuildFrames(FrameCount, PayloadSize, masked: true);

        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Reaper:Heartbeat:Mode"] = "Enforce",
        }).Build();
        _settings = new ReaperSettingsMonitor(configuration);

        _sink = new CountingStream();
        _writeRelay = NewRelay();
        _writeRelay.Attach(_sink, "bench");

        _source = new ReplayStream(_clientFrames);
        _plainSource = new ReplayStream(_clientFrames);
        _readRelay = NewRelay();
        _readRelay.Attach(_source, "bench");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _writeRelay.Dispose();
        _readRelay.Dispose();
        _settings.Dispose();
    }

    [BenchmarkCategory("backend→client (WriteAsync)")]
    [Benchmark(Baseline = true, OperationsPerInvoke = FrameCount)]
    public async Task PlainWrite()
    {
        for (var offset = 0; offset < _serverFrames.Length; offset += CopyBufferSize)
        {
            await _sink.WriteAsync(_serverFrames.AsMemory(offset, Math.Min(CopyBufferSize, _serverFrames.Length - offset)));
        }
    }

    [BenchmarkCategory("backend→client (WriteAsync)")]
    [Benchmark(OperationsPerInvoke = FrameCount)]
    public async Task RelayWrite()
    {
        for (var offset = 0; offset < _serverFrames.Length; offset += CopyBufferSize)
        {
            await _writeRelay.WriteAsync(_serverFrames.AsMemory(offset, Math.Min(CopyBufferSize, _serverFrames.Length - offset)));
        }
    }

    [BenchmarkCategory("client→backend (ReadAsync)")]
    [Benchmark(Baseline = true, OperationsPerInvoke = FrameCount)]
    public async Task PlainRead()
    {
        var remaining = _clientFrames.Length;
        while (remaining > 0)
        {
            _ = await _plainSource.ReadAsync(Memory<byte>.Empty);
            remaining -= await _plainSource.ReadAsync(_readBuffer);
        }
    }

    [BenchmarkCategory("client→backend (ReadAsync)")]
    [Benchmark(OperationsPerInvoke = FrameCount)]
    public async Task RelayRead()
    {
        var remaining = _clientFrames.Length;
        while (remaining > 0)
        {
            _ = await _readRelay.ReadAsync(Memory<byte>.Empty);
            remaining -= await _readRelay.ReadAsync(_readBuffer);
        }
    }

    private RelayConnection NewRelay() =>
        new(1, new DefaultHttpContext(), "bench", "bench", policyName: null, _settings, TimeProvider.System, NullLogger.Instance);

    private static byte[] BuildFrames(int count, int payloadSize, bool masked)
    {
        var headerSize = 2 + (payloadSize <= 125 ? 0 : payloadSize <= ushort.MaxValue ? 2 : 8) + (masked ? 4 : 0);
        var frames = new byte[count * (headerSize + payloadSize)];
        var span = frames.AsSpan();
        for (var i = 0; i < count; i++)
        {
            span[0] = 0x82;
            var maskBit = masked ? 0x80 : 0;
            int pos;
            if (payloadSize <= 125)
            {
                span[1] = (byte)(maskBit | payloadSize);
                pos = 2;
            }
            else if (payloadSize <= ushort.MaxValue)
            {
                span[1] = (byte)(maskBit | 126);
                BinaryPrimitives.WriteUInt16BigEndian(span[2..], (ushort)payloadSize);
                pos = 4;
            }
            else
            {
                span[1] = (byte)(maskBit | 127);
                BinaryPrimitives.WriteUInt64BigEndian(span[2..], (ulong)payloadSize);
                pos = 10;
            }

            if (masked)
            {
                BinaryPrimitives.WriteUInt32BigEndian(span[pos..], 0x9E3779B9u + (uint)i);
                pos += 4;
            }

            span.Slice(pos, payloadSize).Fill((byte)i);
            span = span[(pos + payloadSize)..];
        }

        return frames;
    }
}
