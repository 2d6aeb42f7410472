using System.Buffers;
using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;
using ReaperProxy.Framing;

namespace ReaperProxy.Relay;

// The client→backend direction: YARP's request loop reads here and writes what it gets to the backend.
// Frames toward the backend (pings, Close) are handed to YARP as read results at a frame boundary.
internal sealed partial class RelayConnection
{
    // Below this, a caller's buffer cannot hold a held unit plus new bytes; such reads go through a scratch buffer.
    private const int MinDirectReadBuffer = 256;

    private FrameScanner _c2b;
    private byte[]? _c2bHeld;
    private int _c2bHeldCount;
    private byte[]? _readOverflow;
    private int _readOverflowOffset;
    private int _readOverflowCount;

    // The inner zero-byte read that waits for client data. It may outlive one ReadAsync call (when the
    // wait is woken to hand YARP a frame for the backend) and is resumed by the next call.
    private ValueTask<int> _innerWait;
    private int _innerWaitInFlight; // 1 while the inner read is outstanding and its result not taken
    private bool _innerWaitHooked;
    private volatile bool _innerWaitDone;
    private volatile bool _innerWaitCallbackDone;
    private readonly Action _onInnerReadCompleted;
    private ManualResetValueTaskSourceCore<bool> _waitCore;
    private int _waitArmed;
    private volatile bool _wakeRequested;
    private CancellationTokenSource? _readCts;
    private CancellationToken _readCallerToken;
    private TaskCompletionSource? _readsDone; // made only if the request ends before the read has (see ReadsDone)
    private int _disposeState;
    private int _innerReleased;
    private int _readsEnded; // 1 once the inner stream is let go (ReadsDone)
    private bool _clientEof;

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var inner = _inner ?? throw new InvalidOperationException("The relay is not attached.");
        var token = LinkedToken(ref _readCts, ref _readCallerToken, cancellationToken);

        // YARP reads again only once it has written everything the previous read returned to the
        // backend: that write completed (the backend's progress, without the kernel's counter) and a
        // Close handed over with it has reached the backend.
        EndPending(ref _backend);
        if (_backend.CloseInFlight)
        {
            OnCloseDelivered(Leg.Backend);
        }

        var produced = 0;
        try
        {
            while (true)
            {
                if (_readOverflowCount > 0)
                {
                    return produced = buffer.IsEmpty ? 0 : DrainOverflow(buffer.Span);
                }

                if (_c2b.AtBoundary && HasFrameFor(Leg.Backend))
                {
                    if (buffer.IsEmpty)
                    {
                        return 0;
                    }

                    return produced = buffer.Length >= FrameHeader.MaxControlFrame
                        ? WriteFrameForBackend(buffer.Span)
                        : ViaOverflow(buffer.Span, static (self, scratch) => self.WriteFrameForBackend(scratch));
                }

                if (_clientEof)
                {
                    return 0;
                }

                bool dataReady;
                try
                {
                    dataReady = await WaitForClientAsync();
                }
                catch (IOException) when (!token.IsCancellationRequested)
                {
                    // Reset by the client: it is gone just as if it had sent FIN.
                    OnClientGone(CloseReason.ClientError);
                    continue;
                }

                if (!dataReady)
                {
                    continue;
                }

                if (buffer.IsEmpty)
                {
                    // YARP's zero-byte read: YARP holds no buffer while it waits here. When what arrived
                    // may be nothing but the pong to our ping, take it in now, into a pooled buffer
                    // returned at once. Otherwise YARP rents its 64 KiB copy buffer for the next read,
                    // the pong is removed, nothing is left to return, and that read waits for the
                    // client's next bytes while holding YARP's buffer: one 64 KiB array per idle,
                    // pinged connection for as long as it stays idle.
                    // Only while a ping to the client is out and nothing came back since it left.
                    var pingSent = Volatile.Read(ref _client.PingSentAt);
                    if (pingSent == 0 || Volatile.Read(ref _client.LastHeard) >= pingSent)
                    {
                        return 0;
                    }

                    var ahead = ArrayPool<byte>.Shared.Rent(4096);
                    int forwarded;
                    try
                    {
                        forwarded = await ReadFromClientAsync(inner, ahead, token);
                        StashOverflow(ahead.AsSpan(0, forwarded));
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(ahead);
                    }

                    if (forwarded > 0)
                    {
                        // Bytes for the backend: YARP's next (real) read drains them from the overflow.
                        return 0;
                    }

                    // Only our pong (or part of a frame, held): keep waiting without a caller's buffer.
                    continue;
                }

                if (buffer.Length >= MinDirectReadBuffer)
                {
                    produced = await ReadFromClientAsync(inner, buffer, token);
                }
                else
                {
                    var scratch = ArrayPool<byte>.Shared.Rent(4096);
                    try
                    {
                        produced = await ReadFromClientAsync(inner, scratch, token);
                        StashOverflow(scratch.AsSpan(0, produced));
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(scratch);
                    }

                    produced = DrainOverflow(buffer.Span);
                }

                if (produced > 0)
                {
                    return produced;
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested && !_finishRequested && !_context.RequestAborted.IsCancellationRequested)
        {
            // YARP stops reading the client once the backend's side has ended (EOF or reset) without
            // a closing handshake; the client would only see its connection drop (1006).
            await TellClientBackendWentAwayAsync(inner);
            throw;
        }
        finally
        {
            if (produced > 0)
            {
                // YARP now writes these bytes to the backend; until it reads again, they are pending there.
                BeginPending(ref _backend, _time.GetTimestamp());
            }
        }
    }

    // One read from the client into buffer; returns how many bytes go to the backend (0: none yet).
    private async ValueTask<int> ReadFromClientAsync(Stream inner, Memory<byte> buffer, CancellationToken token)
    {
        var held = _c2bHeldCount;
        if (held > 0)
        {
            _c2bHeld.AsSpan(0, held).CopyTo(buffer.Span);
        }

        // When a frame for the backend waits for a boundary, read no further than the end of the
        // current payload so the next call starts exactly there.
        var limit = buffer.Length;
        if (HasFrameFor(Leg.Backend) && _c2b.PayloadRemaining > 0 && held + _c2b.PayloadRemaining < limit)
        {
            limit = held + (int)_c2b.PayloadRemaining;
        }

        int read;
        try
        {
            read = await inner.ReadAsync(buffer[held..limit], token);
        }
        catch (IOException) when (!token.IsCancellationRequested)
        {
            OnClientGone(CloseReason.ClientError);
            return 0;
        }

        if (read == 0)
        {
            OnClientGone(CloseReason.ClientClose);
            return 0;
        }

        var now = _time.GetTimestamp();
        Volatile.Write(ref _client.LastHeard, now);
        _c2bHeldCount = 0;
        return ScanFromClient(buffer.Span[..(held + read)], now);
    }

    // Walks the client's bytes in place: forwarded runs are compacted to the front, our pongs removed,
    // a trailing partial header or control frame held for the next read. Whether a run is forwarded is
    // decided at its start and again after every control frame, so nothing the client sends after its
    // Close goes on, even in the same read (RFC 6455 §5.5.1).
    private int ScanFromClient(Span<byte> data, long now)
    {
        var write = 0;
        var runStart = 0;
        var pos = 0;
        var dropping = Blocked(Leg.Client);
        while (true)
        {
            if (dropping && _client.SendsNothingMore)
            {
                // After its Close (or a protocol error) the client's bytes are not even parsed.
                return write;
            }

            if (_passThrough)
            {
                Keep(data, runStart, data.Length, ref write, dropping);
                return write;
            }

            var stop = _c2b.Scan(data, pos, stopAtBoundary: false, out var run, out var control, out var error);
            pos += run;
            if (run > 0)
            {
                // Data-frame bytes went by (see FrameScanner.Scan).
                Volatile.Write(ref _lastData, now);
            }

            switch (stop)
            {
                case ScanStop.End:
                    Keep(data, runStart, pos, ref write, dropping);
                    return write;

                case ScanStop.Held:
                    Keep(data, runStart, pos, ref write, dropping);
                    _c2bHeld ??= new byte[FrameHeader.MaxControlFrame];
                    _c2bHeldCount = data.Length - pos;
                    data[pos..].CopyTo(_c2bHeld);
                    return write;

                case ScanStop.Control:
                    var length = (int)control.FrameLength;
                    var forward = OnControlFrom(Leg.Client, control, data.Slice(pos, length), now);
                    if (!forward)
                    {
                        Keep(data, runStart, pos, ref write, dropping);
                        runStart = pos + length;
                    }

                    pos += length;
                    if (forward && control.Opcode == WebSocketOpcode.Close)
                    {
                        // The Close goes with the run before it; nothing after it does.
                        Keep(data, runStart, pos, ref write, dropping);
                        runStart = pos;
                    }

                    if (Blocked(Leg.Client) != dropping)
                    {
                        Keep(data, runStart, pos, ref write, dropping);
                        runStart = pos;
                        dropping = !dropping;
                    }

                    break;

                case ScanStop.Error:
                    Keep(data, runStart, pos, ref write, dropping);
                    if (OnProtocolError(Leg.Client, error))
                    {
                        // Observe mode: stop parsing and pass everything through from here on.
                        runStart = pos;
                        break;
                    }

                    return write;

                default:
                    throw new InvalidOperationException($"unexpected scan stop {stop}");
            }
        }

        static void Keep(Span<byte> data, int from, int to, ref int write, bool dropping)
        {
            if (dropping || to <= from)
            {
                return;
            }

            if (from != write)
            {
                data[from..to].CopyTo(data[write..]);
            }

            write += to - from;
        }
    }

    // A frame of the proxy's own for the backend, handed to YARP as the result of a read.
    private int WriteFrameForBackend(Span<byte> destination)
    {
        if (_backend.CloseQueued)
        {
            var length = WriteQueuedClose(Leg.Backend, destination);
            bool cancelWrite;
            lock (_gate)
            {
                // It has reached the backend when YARP reads again.
                _backend.CloseInFlight = true;
                cancelWrite = _cancelWriteAfterBackendClose;
                _cancelWriteAfterBackendClose = false;
            }

            if (cancelWrite && _writeCts is { } writes)
            {
                // The client was reaped with a write to it stuck (Terminate): the backend's Close is in YARP's
                // hands now, so the write can go. Off this thread: cancellation runs Kestrel's and YARP's code.
                ThreadPool.UnsafeQueueUserWorkItem(static cts => CancelQuietly(cts), writes, preferLocal: false);
            }

            return length;
        }

        return WritePing(Leg.Backend, destination, _time.GetTimestamp());
    }

    private int ViaOverflow(Span<byte> destination, Func<RelayConnection, Span<byte>, int> produce)
    {
        Span<byte> scratch = stackalloc byte[FrameHeader.MaxControlFrame];
        var length = produce(this, scratch);
        StashOverflow(scratch[..length]);
        return DrainOverflow(destination);
    }

    private void StashOverflow(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty)
        {
            return;
        }

        // Rented while it holds bytes, returned once drained: an idle connection keeps no buffer.
        // Only called with the overflow empty (every read drains it first).
        _readOverflow = ArrayPool<byte>.Shared.Rent(Math.Max(bytes.Length, 256));
        bytes.CopyTo(_readOverflow);
        _readOverflowOffset = 0;
        _readOverflowCount = bytes.Length;
    }

    private int DrainOverflow(Span<byte> destination)
    {
        if (_readOverflowCount == 0)
        {
            // Nothing stashed (a read that forwarded nothing): the array went back to the pool with its
            // offset at its old end, and slicing a null array there throws.
            return 0;
        }

        var n = Math.Min(destination.Length, _readOverflowCount);
        _readOverflow.AsSpan(_readOverflowOffset, n).CopyTo(destination);
        _readOverflowOffset += n;
        _readOverflowCount -= n;
        if (_readOverflowCount == 0 && _readOverflow is not null)
        {
            ArrayPool<byte>.Shared.Return(_readOverflow);
            _readOverflow = null;
        }

        return n;
    }

    // Waits until the client has data (true) or the relay has something for the backend (false).
    // Allocation-free: the inner zero-byte read's continuation completes a reusable value-task source.
    private ValueTask<bool> WaitForClientAsync()
    {
        if (_innerWaitInFlight == 0)
        {
            _innerWait = _inner!.ReadAsync(Memory<byte>.Empty, _readCts!.Token);
            Volatile.Write(ref _innerWaitInFlight, 1);
            _innerWaitHooked = false;
            _innerWaitDone = false;
            _innerWaitCallbackDone = false;
        }

        // Once hooked, an inner read is consumed only after its continuation has run to the end:
        // consumed earlier (IsCompleted turns true before the continuation runs), the continuation
        // would still run later and signal the *next* wait as "data ready", whose inner read is
        // still pending, and GetResult on it throws (Kestrel's pooled source: "Operation is not
        // valid due to the current state of the object"), which ends the connection.
        if (_innerWaitHooked ? _innerWaitCallbackDone : _innerWait.IsCompleted)
        {
            return ConsumeInnerWait()
                ? new ValueTask<bool>(true)
                : ValueTask.FromException<bool>(new OperationCanceledException("The relay was disposed while a read was pending."));
        }

        if (_wakeRequested)
        {
            _wakeRequested = false;
            return new ValueTask<bool>(false);
        }

        _waitCore.Reset();

        // A full fence (not a release-only write): the read of _innerWaitDone below must not move
        // before this store, or a continuation that sets it meanwhile finds nothing armed: a lost wakeup.
        Interlocked.Exchange(ref _waitArmed, 1);
        if (!_innerWaitHooked)
        {
            _innerWaitHooked = true;
            _innerWait.GetAwaiter().UnsafeOnCompleted(_onInnerReadCompleted);
        }
        else if (_innerWaitDone)
        {
            Signal(true);
        }

        if (_wakeRequested)
        {
            Signal(false);
        }

        return new ValueTask<bool>(this, _waitCore.Version);
    }

    private void OnInnerReadCompleted()
    {
        _innerWaitDone = true;

        // Done before the signal: the waiting read's continuation runs inline in it (below) and may
        // start and hook the next inner read before Signal returns; nothing here may touch that read's state.
        _innerWaitCallbackDone = true;
        Signal(true, inline: true);

        // Full fence: Dispose sets its flag and then reads ours; one of the two sides must see the other.
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref _disposeState) != 0)
        {
            TryEndInnerRead();
        }
    }

    /// <summary>Wakes a read waiting for the client so it can hand YARP a frame for the backend.</summary>
    private void WakeReader()
    {
        _wakeRequested = true;
        Signal(false);
    }

    // inline: run the waiting read's continuation (YARP's copy loop) on this thread, as a plain await on
    // the inner stream would. Only from the inner read's own completion: Kestrel's callback, where Mode Off
    // runs the same loop. A wake from the heartbeat or the closing path queues it instead, so no
    // connection's copy loop ever runs on the shared heartbeat tick. Saves a thread-pool hop (and the
    // worker wake-up it costs) per message from the client.
    private void Signal(bool dataReady, bool inline = false)
    {
        if (Interlocked.Exchange(ref _waitArmed, 0) == 1)
        {
            // Only the winner of the exchange above completes this wait, so the flag is its alone until then.
            _waitCore.RunContinuationsAsynchronously = !inline;
            _waitCore.SetResult(dataReady);
        }
    }

    // Takes the inner read's result, once: Dispose's drain and the waiting read's continuation can both
    // get here, and a ValueTask's result may be taken only once (a pooled source may serve another read).
    private bool ConsumeInnerWait()
    {
        if (Interlocked.Exchange(ref _innerWaitInFlight, 0) == 0)
        {
            return false;
        }

        _innerWait.GetAwaiter().GetResult();
        return true;
    }

    bool IValueTaskSource<bool>.GetResult(short token)
    {
        var dataReady = _waitCore.GetResult(token);
        if (dataReady)
        {
            if (_innerWaitHooked)
            {
                // Signalled by the continuation itself, or by the reader once it saw _innerWaitDone:
                // either way the continuation is at most a few instructions from its end.
                var spin = new SpinWait();
                while (!_innerWaitCallbackDone)
                {
                    spin.SpinOnce();
                }
            }

            if (!ConsumeInnerWait())
            {
                // Dispose cancelled the inner read and took its result: this read ends, without reading again.
                throw new OperationCanceledException("The relay was disposed while a read was pending.");
            }
        }
        else
        {
            _wakeRequested = false;
        }

        return dataReady;
    }

    ValueTaskSourceStatus IValueTaskSource<bool>.GetStatus(short token) => _waitCore.GetStatus(token);

    void IValueTaskSource<bool>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _waitCore.OnCompleted(continuation, state, token, flags);

    // Once disposed: takes the inner read's result if it has completed, then lets the inner stream go.
    // Returns false while the read is still completing; its continuation calls again.
    private bool TryEndInnerRead()
    {
        if (Volatile.Read(ref _innerWaitInFlight) != 0)
        {
            if (!(_innerWaitHooked ? _innerWaitCallbackDone : _innerWait.IsCompleted))
            {
                return false;
            }

            try
            {
                ConsumeInnerWait();
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or ObjectDisposedException)
            {
                // Expected: the read was cancelled or the connection is gone.
            }
        }

        if (Interlocked.Exchange(ref _innerReleased, 1) == 0)
        {
            _readCts?.Dispose();
            _inner?.Dispose();
            Interlocked.Exchange(ref _readsEnded, 1);
            Volatile.Read(ref _readsDone)?.TrySetResult();
        }

        return true;
    }
}
