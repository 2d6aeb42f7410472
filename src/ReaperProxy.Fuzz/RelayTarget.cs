using System.Buffers.Binary;
using System.Reflection;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using ReaperProxy.Configuration;
using ReaperProxy.Relay;

namespace ReaperProxy.Fuzz;

/// <summary>
/// Fuzz target 2: one <see cref="RelayConnection"/> (both per-direction state machines, liveness and the
/// closing handshake) driven on a <see cref="Pump"/> with a fake clock, as tests/ReaperProxy.Tests/Relay
/// drives it. The input is a program (see <see cref="RelayOp"/>): a configuration byte, then operations
/// — chunks of bytes from the client or the backend, heartbeat ticks, the peers' answers to the proxy's
/// pings split at a chosen point, Closes, a client that stops reading, end of stream — so AFL explores
/// interleavings, not only byte strings. After the program, <see cref="RelayOracle"/> checks what each
/// side received against what the other sent.
/// </summary>
internal static class RelayTarget
{
    /// <summary>YARP's copy buffer sizes the configuration byte picks from (StreamCopier uses 64 KiB).</summary>
    private static readonly int[] s_readBufferSizes = [64 * 1024, 1, 16, 139, 255, 256, 1024, 4096];

    private static readonly Dictionary<int, ReaperSettingsMonitor> s_settings = [];

    private static readonly FieldInfo s_clientLeg = typeof(RelayConnection).GetField("_client", BindingFlags.NonPublic | BindingFlags.Instance)
        ?? throw new InvalidOperationException("RelayConnection._client not found");

    private static readonly FieldInfo s_backendLeg = typeof(RelayConnection).GetField("_backend", BindingFlags.NonPublic | BindingFlags.Instance)
        ?? throw new InvalidOperationException("RelayConnection._backend not found");

    // REAPER_FUZZ_VERBOSE=1 (replay): each operation and what each side received, on stderr.
    private static readonly bool s_verbose = Environment.GetEnvironmentVariable("REAPER_FUZZ_VERBOSE") == "1";

    public static void Run(ReadOnlySpan<byte> data)
    {
        var input = new FuzzInput(data);
        var config = input.NextByte();
        var flags = input.NextByte();
        var mode = (config & 7) switch { 6 => HeartbeatMode.Observe, 7 => HeartbeatMode.Off, _ => HeartbeatMode.Enforce };
        var legs = ((config >> 3) & 3) switch { 1 => HeartbeatLegs.Client, 2 => HeartbeatLegs.Backend, _ => HeartbeatLegs.Both };
        var readBufferSize = s_readBufferSizes[config >> 5];
        var idleTimeout = (flags & 1) != 0;

        var pump = new Pump();
        var session = new Session(Settings(mode, legs, idleTimeout), readBufferSize, pump);
        var program = data.ToArray();
        pump.Within(() => session.Execute(program.AsSpan(Math.Min(2, program.Length))));
        var client = (LegState)s_clientLeg.GetValue(session.Relay)!;
        var backend = (LegState)s_backendLeg.GetValue(session.Relay)!;
        RelayOracle.Check(session.Observation(mode, client, backend));
        pump.Within(session.End);
    }

    private static ReaperSettingsMonitor Settings(HeartbeatMode mode, HeartbeatLegs legs, bool idleTimeout)
    {
        var key = ((int)mode * 8) + ((int)legs * 2) + (idleTimeout ? 1 : 0);
        lock (s_settings)
        {
            if (!s_settings.TryGetValue(key, out var monitor))
            {
                var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
                {
                    ["Reaper:Heartbeat:Mode"] = mode.ToString(),
                    ["Reaper:Heartbeat:Legs"] = legs.ToString(),
                    ["Reaper:Heartbeat:PingInterval"] = "10s",
                    ["Reaper:Heartbeat:PongTimeout"] = "5s",
                    ["Reaper:Heartbeat:CloseTimeout"] = "3s",
                    ["Reaper:Heartbeat:IdleTimeout"] = idleTimeout ? "60s" : null,
                }).Build();
                monitor = new ReaperSettingsMonitor(configuration);
                var policy = monitor.Current.DefaultPolicy;
                if (policy.Mode != mode || policy.Legs != legs)
                {
                    throw new InvalidOperationException($"fuzz settings not applied: {policy.Describe()}");
                }

                s_settings[key] = monitor;
            }

            return monitor;
        }
    }

    /// <summary>One connection and the three parts the harness plays: the client, YARP's two copy loops, the heartbeat.</summary>
    private sealed class Session
    {
        private readonly FakeTimeProvider _time = new(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
        private readonly Lifetime _lifetime = new();
        private readonly FuzzClientStream _client = new();
        private readonly Pump _pump;
        private readonly int _readBufferSize;
        private readonly List<byte> _clientSent = [];
        private readonly List<byte> _toBackend = [];
        private readonly List<byte> _backendSent = [];
        private readonly Queue<byte[]> _backendQueue = new();
        private readonly CancellationTokenSource _yarpReadCts = new();
        private byte[] _clientCarry = [];
        private byte[] _backendCarry = [];
        private Task? _writer;
        private Task? _reader;
        private bool _clientEnded;
        private bool _backendEnded;
        private bool _disposed;
        private Exception? _readFailure;
        private Exception? _writeFailure;

        public Session(ReaperSettingsMonitor settings, int readBufferSize, Pump pump)
        {
            _pump = pump;
            _readBufferSize = readBufferSize;
            var context = new DefaultHttpContext();
            context.Features.Set<IHttpRequestLifetimeFeature>(_lifetime);
            Relay = new RelayConnection(1, context, "route", "cluster", policyName: null, settings, _time, NullLogger.Instance);
            Relay.Attach(_client, "http://backend/");
        }

        public RelayConnection Relay { get; }

        public void Execute(ReadOnlySpan<byte> program)
        {
            _reader = ReadLoopAsync();
            _pump.RunUntilIdle();
            var input = new FuzzInput(program);
            while (!input.IsEmpty && !_lifetime.Aborted)
            {
                var op = (RelayOp)(input.NextByte() % (int)RelayOp.Count);
                if (s_verbose)
                {
                    Console.Error.WriteLine($"op {op}: client sent {_clientSent.Count}, backend got {_toBackend.Count}, backend sent {_backendSent.Count}, client got {_client.Received.Length}, state {Relay.State}");
                }

                Apply(op, ref input);
                PumpBackendWrites();
                _pump.RunUntilIdle();
            }

            // What a stopped client held back arrives now: every check sees the relay at rest.
            _client.ReleaseWrites();
            _pump.RunUntil(() => _writer is null or { IsCompleted: true }, TimeSpan.FromSeconds(1));
        }

        private void Apply(RelayOp op, ref FuzzInput input)
        {
            switch (op)
            {
                case RelayOp.ClientBytes:
                    SendFromClient(input.Take(input.NextByte() + 1));
                    break;
                case RelayOp.BackendBytes:
                    SendFromBackend(input.Take(input.NextByte() + 1));
                    break;
                case RelayOp.Tick:
                    _time.Advance(TimeSpan.FromMilliseconds((input.NextByte() + 1) * 100));
                    Relay.OnTick(_time.GetTimestamp());
                    break;
                case RelayOp.ClientPong:
                    AnswerPing(LastPing(_client.Received, masked: false), maskKey: BinaryPrimitives.ReadUInt32BigEndian([input.NextByte(), 0x5A, input.NextByte(), 0xA5]), input.NextByte(), toClient: false);
                    break;
                case RelayOp.BackendPong:
                    AnswerPing(LastPing([.. _toBackend], masked: true), maskKey: null, input.NextByte(), toClient: true);
                    break;
                case RelayOp.ClientClose:
                    SendFromClient(Close(input.NextUInt16(), masked: true));
                    break;
                case RelayOp.BackendClose:
                    SendFromBackend(Close(input.NextUInt16(), masked: false));
                    break;
                case RelayOp.ClientStopsReading:
                    if (_client.WritesHeld)
                    {
                        _client.ReleaseWrites();
                    }
                    else
                    {
                        _client.HoldWrites();
                    }

                    break;
                case RelayOp.ClientEnd:
                    _clientEnded = true;
                    _client.EndOfStream();
                    break;
                case RelayOp.BackendEnd:
                    // YARP's response loop saw the backend's EOF and stops reading the client (cancels that read).
                    _backendEnded = true;
                    _yarpReadCts.Cancel();
                    break;
                case RelayOp.Shutdown:
                    Relay.BeginShutdown();
                    break;
                default:
                    throw new InvalidOperationException($"unknown op {op}");
            }
        }

        private void SendFromClient(ReadOnlySpan<byte> bytes)
        {
            if (_clientEnded)
            {
                return;
            }

            byte[] all = [.. _clientCarry, .. bytes];
            _clientCarry = [];
            _clientSent.AddRange(all);
            _client.Send(all);
        }

        private void SendFromBackend(ReadOnlySpan<byte> bytes)
        {
            if (_backendEnded)
            {
                return;
            }

            byte[] all = [.. _backendCarry, .. bytes];
            _backendCarry = [];
            _backendQueue.Enqueue(all);
        }

        // A peer answers the proxy's latest ping to it; split sends the first part now, the rest in front of its next bytes.
        private void AnswerPing(byte[]? payload, uint? maskKey, byte split, bool toClient)
        {
            if (payload is null)
            {
                return;
            }

            var pong = Frame(0xA, payload, maskKey);
            var now = split % (pong.Length + 1);
            if (toClient)
            {
                SendFromBackend(pong.AsSpan(0, now));
                _backendCarry = pong[now..];
            }
            else
            {
                SendFromClient(pong.AsSpan(0, now));
                _clientCarry = pong[now..];
            }
        }

        // The payload of the last complete 16-byte ping in what a leg received.
        private static byte[]? LastPing(ReadOnlySpan<byte> received, bool masked)
        {
            byte[]? last = null;
            foreach (var frame in WireModel.Read(received, stopAfterClose: false).Frames)
            {
                if (frame.Complete && frame.Opcode == 0x9 && frame.Masked == masked && frame.Payload.Length == 16)
                {
                    last = frame.Payload;
                }
            }

            return last;
        }

        private static byte[] Close(ushort code, bool masked) =>
            Frame(0x8, code == 0 ? [] : [(byte)(code >> 8), (byte)code], masked ? 0x1234_5678u ^ code : null);

        private static byte[] Frame(byte opcode, byte[] payload, uint? maskKey)
        {
            var frame = new byte[2 + (maskKey is null ? 0 : 4) + payload.Length];
            frame[0] = (byte)(0x80 | opcode);
            frame[1] = (byte)((maskKey is null ? 0 : 0x80) | payload.Length);
            var offset = 2;
            if (maskKey is { } key)
            {
                BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(2), key);
                offset = 6;
            }

            for (var i = 0; i < payload.Length; i++)
            {
                frame[offset + i] = (byte)(payload[i] ^ (maskKey is { } k ? (byte)(k >> (8 * (3 - (i & 3)))) : 0));
            }

            return frame;
        }

        // YARP's response loop: one write at a time, the next once the previous completed.
        private void PumpBackendWrites()
        {
            if (_writer is null or { IsCompleted: true } && _backendQueue.Count > 0 && _writeFailure is null)
            {
                _writer = WriteLoopAsync();
            }
        }

        private async Task WriteLoopAsync()
        {
            while (_backendQueue.TryDequeue(out var chunk))
            {
                _backendSent.AddRange(chunk);
                try
                {
                    await Relay.WriteAsync(chunk);
                }
                catch (Exception ex)
                {
                    _writeFailure = ex;
                    return;
                }
            }
        }

        // YARP's request loop: a zero-byte read, then a read into its buffer, until end of stream.
        private async Task ReadLoopAsync()
        {
            var buffer = new byte[_readBufferSize];
            try
            {
                while (true)
                {
                    var zero = await Relay.ReadAsync(Memory<byte>.Empty, _yarpReadCts.Token);
                    PropertyViolation.Check(zero == 0, $"relay: a zero-byte read returned {zero}");
                    var read = await Relay.ReadAsync(buffer, _yarpReadCts.Token);
                    if (read == 0)
                    {
                        return;
                    }

                    _toBackend.AddRange(buffer.AsSpan(0, read));
                }
            }
            catch (Exception ex) when (ex is not PropertyViolation)
            {
                _readFailure = ex;
            }
        }

        public RelayObservation Observation(HeartbeatMode mode, LegState client, LegState backend)
        {
            if (_reader is { IsFaulted: true })
            {
                _reader.GetAwaiter().GetResult();
            }

            var unexpectedRead = _readFailure is not null && !(_readFailure is OperationCanceledException && (_backendEnded || _lifetime.Aborted));
            PropertyViolation.Check(!unexpectedRead, $"relay: YARP's read failed: {_readFailure}");
            PropertyViolation.Check(_writeFailure is null || _lifetime.Aborted, $"relay: YARP's write failed: {_writeFailure}");
            if (s_verbose)
            {
                Console.Error.WriteLine($"client sent    {Convert.ToHexString([.. _clientSent])}");
                Console.Error.WriteLine($"backend got    {Convert.ToHexString([.. _toBackend])}");
                Console.Error.WriteLine($"backend sent   {Convert.ToHexString([.. _backendSent])}");
                Console.Error.WriteLine($"client got     {Convert.ToHexString(_client.Received)}");
                Console.Error.WriteLine($"state {Relay.State}, reason {Relay.Reason}, aborted {_lifetime.Aborted}");
            }

            return new RelayObservation(
                mode,
                [.. _clientSent],
                [.. _toBackend],
                [.. _backendSent],
                _client.Received.ToArray(),
                client.PingTag,
                backend.PingTag,
                client.Dead,
                backend.Dead,
                Relay.State,
                Relay.Reason,
                _lifetime.Aborted,
                ReaderRunning: _reader is { IsCompleted: false } && !_backendEnded);
        }

        /// <summary>As the middleware ends a request: no more ticks, the stream disposed, its reads awaited.</summary>
        public void End()
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            Relay.MarkEnded(CloseReason.None);
            var dispose = Relay.DisposeAsync().AsTask();
            _pump.RunUntil(() => dispose.IsCompleted && Relay.ReadsDone.IsCompleted && _reader is { IsCompleted: true } && _writer is null or { IsCompleted: true },
                TimeSpan.FromSeconds(2));
            PropertyViolation.Check(dispose.IsCompletedSuccessfully, "relay: DisposeAsync did not complete");
            PropertyViolation.Check(Relay.ReadsDone.IsCompleted, "relay: ReadsDone did not complete after Dispose (a read on the client stream outlives the request)");
            PropertyViolation.Check(!_client.ReadPending, "relay: a read on the client stream is still pending after Dispose");
            PropertyViolation.Check(_reader is { IsCompleted: true }, "relay: YARP's read did not end after Dispose");
            PropertyViolation.Check(_writer is null or { IsCompleted: true }, "relay: YARP's write did not end after Dispose");
        }
    }

    private sealed class Lifetime : IHttpRequestLifetimeFeature
    {
        private readonly CancellationTokenSource _aborted = new();

        public CancellationToken RequestAborted { get => _aborted.Token; set => throw new NotSupportedException(); }

        public bool Aborted => _aborted.IsCancellationRequested;

        public void Abort() => _aborted.Cancel();
    }
}

/// <summary>The operations of a relay fuzz program, one byte each (modulo <see cref="Count"/>), then their arguments.</summary>
internal enum RelayOp
{
    /// <summary>[n] then n+1 bytes the client sends (after the rest of a split pong).</summary>
    ClientBytes,

    /// <summary>[n] then n+1 bytes the backend sends: one write of YARP's.</summary>
    BackendBytes,

    /// <summary>[t]: the clock moves (t+1)×100 ms and the heartbeat ticks.</summary>
    Tick,

    /// <summary>[k1][k2][split]: the client answers the proxy's latest ping, masked; split bytes now, the rest later.</summary>
    ClientPong,

    /// <summary>[split]: the backend answers the proxy's latest ping.</summary>
    BackendPong,

    /// <summary>[code:2]: the client sends Close (code 0: an empty Close).</summary>
    ClientClose,

    /// <summary>[code:2]: the backend sends Close.</summary>
    BackendClose,

    /// <summary>The client stops reading (writes toward it wait), or starts again.</summary>
    ClientStopsReading,

    /// <summary>The client's TCP FIN.</summary>
    ClientEnd,

    /// <summary>The backend's EOF: YARP stops reading the client.</summary>
    BackendEnd,

    /// <summary>The proxy shuts down (Close 1001 to both).</summary>
    Shutdown,

    Count,
}

/// <summary>What one run produced, for <see cref="RelayOracle"/>.</summary>
internal sealed record RelayObservation(
    HeartbeatMode Mode,
    byte[] ClientSent,
    byte[] BackendReceived,
    byte[] BackendSent,
    byte[] ClientReceived,
    ulong ClientTag,
    ulong BackendTag,
    bool ClientDead,
    bool BackendDead,
    string State,
    CloseReason Reason,
    bool Aborted,
    bool ReaderRunning);
