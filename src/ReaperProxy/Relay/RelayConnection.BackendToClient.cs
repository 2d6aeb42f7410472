using System.Buffers;
using System.Runtime.CompilerServices;
using ReaperProxy.Framing;

namespace ReaperProxy.Relay;

// The backend→client direction: YARP's response loop writes the backend's bytes here. Writes from YARP
// and from the heartbeat (pings, Close toward the client) are serialised by one lock.
internal sealed partial class RelayConnection
{
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private FrameScanner _b2c;
    private byte[]? _b2cHeld;
    private int _b2cHeldCount;
    private CancellationTokenSource? _writeCts;
    private CancellationToken _writeCallerToken;

    // YARP is inside WriteAsync: it is not reading the backend meanwhile.
    private volatile bool _writing;

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var inner = _inner ?? throw new InvalidOperationException("The relay is not attached.");
        await _writeLock.WaitAsync(cancellationToken);
        _writing = true;
        try
        {
            // Linked, so that a write stuck toward a reaped client can be cancelled (Terminate) without
            // cancelling YARP's. Cancelled, not abandoned: the write may still hold its buffer.
            var token = LinkedToken(ref _writeCts, ref _writeCallerToken, cancellationToken);
            var now = _time.GetTimestamp();
            Volatile.Write(ref _backend.LastHeard, now);
            var consumed = 0;
            if (_b2cHeldCount > 0)
            {
                consumed = await CompleteHeldUnitAsync(inner, buffer, now, token);
            }

            if (consumed < buffer.Length)
            {
                var heldAt = await ForwardFromBackendAsync(inner, buffer[consumed..], now, token);
                if (heldAt >= 0)
                {
                    _b2cHeld ??= new byte[FrameHeader.MaxControlFrame * 2];
                    var rest = buffer.Span[(consumed + heldAt)..];
                    rest.CopyTo(_b2cHeld);
                    _b2cHeldCount = rest.Length;
                }
            }

            await SendFramesForClientAsync(inner, token);
        }
        catch (OperationCanceledException) when (_client.Dead && !cancellationToken.IsCancellationRequested)
        {
            // The client was reaped while a write to it was stuck: abandon that write and keep
            // relaying the backend's side (its answer to our Close) until the connection is finished.
            Volatile.Write(ref _client.PendingSince, 0);
        }
        finally
        {
            _writing = false;
            _writeLock.Release();
        }
    }

    // A header or control frame split across YARP's writes: complete it in the held buffer, then go on
    // with the rest of this write. Returns how many bytes of buffer were used up.
    private async ValueTask<int> CompleteHeldUnitAsync(Stream inner, ReadOnlyMemory<byte> buffer, long now, CancellationToken token)
    {
        var held = _b2cHeldCount;
        var take = Math.Min(buffer.Length, _b2cHeld!.Length - held);
        buffer.Span[..take].CopyTo(_b2cHeld.AsSpan(held));
        var staged = new ReadOnlyMemory<byte>(_b2cHeld, 0, held + take);
        _b2cHeldCount = 0;
        var heldAt = await ForwardFromBackendAsync(inner, staged, now, token);
        if (heldAt < 0)
        {
            return take;
        }

        if (heldAt >= held)
        {
            // The unit that is still incomplete began in this write: scan it again from there.
            return heldAt - held;
        }

        // Still incomplete (this write was too short): keep what we have.
        var remaining = held + take - heldAt;
        _b2cHeld.AsSpan(heldAt, remaining).CopyTo(_b2cHeld);
        _b2cHeldCount = remaining;
        return take;
    }

    // Forwards data to the client frame by frame. Returns the offset of a trailing partial unit the
    // caller must hold, or -1. As toward the backend, whether a run is forwarded is decided at its start
    // and after every control frame: nothing the backend sends after its Close reaches the client.
    private async ValueTask<int> ForwardFromBackendAsync(Stream inner, ReadOnlyMemory<byte> data, long now, CancellationToken token)
    {
        var runStart = 0;
        var pos = 0;
        var dropping = Blocked(Leg.Backend);
        while (true)
        {
            if (dropping && _backend.SendsNothingMore)
            {
                return -1;
            }

            if (_passThrough)
            {
                await SendToClientAsync(inner, data[runStart..], dropping, now, token);
                return -1;
            }

            var stop = _b2c.Scan(data.Span, pos, HasFrameFor(Leg.Client), out var run, out var control, out var error);
            pos += run;
            if (run > 0)
            {
                // Data-frame bytes went by (see FrameScanner.Scan).
                Volatile.Write(ref _lastData, now);
            }

            switch (stop)
            {
                case ScanStop.End:
                    await SendToClientAsync(inner, data[runStart..pos], dropping, now, token);
                    return -1;

                case ScanStop.Held:
                    await SendToClientAsync(inner, data[runStart..pos], dropping, now, token);
                    return pos;

                case ScanStop.Boundary:
                    await SendToClientAsync(inner, data[runStart..pos], dropping, now, token);
                    runStart = pos;
                    await SendFramesForClientAsync(inner, token);
                    dropping = Blocked(Leg.Backend);
                    if (pos == data.Length)
                    {
                        return -1;
                    }

                    break;

                case ScanStop.Control:
                    var length = (int)control.FrameLength;
                    var forward = OnControlFrom(Leg.Backend, control, data.Span.Slice(pos, length), now);
                    if (!forward)
                    {
                        await SendToClientAsync(inner, data[runStart..pos], dropping, now, token);
                        runStart = pos + length;
                    }

                    pos += length;
                    if (forward && control.Opcode == WebSocketOpcode.Close)
                    {
                        // The Close is the last frame the client may get: send it now and mark it sent.
                        await SendToClientAsync(inner, data[runStart..pos], dropping, now, token);
                        runStart = pos;
                        if (!dropping)
                        {
                            OnCloseDelivered(Leg.Client);
                        }
                    }

                    if (Blocked(Leg.Backend) != dropping)
                    {
                        await SendToClientAsync(inner, data[runStart..pos], dropping, now, token);
                        runStart = pos;
                        dropping = !dropping;
                    }

                    break;

                case ScanStop.Error:
                    await SendToClientAsync(inner, data[runStart..pos], dropping, now, token);
                    if (OnProtocolError(Leg.Backend, error))
                    {
                        runStart = pos;
                        break;
                    }

                    return -1;

                default:
                    throw new InvalidOperationException($"unexpected scan stop {stop}");
            }
        }
    }

    // Writes toward the client. While the write is pending the client is being asked to consume; its
    // completion (or, where the kernel's counter is readable, the counter) says it did.
    private ValueTask SendToClientAsync(Stream inner, ReadOnlyMemory<byte> bytes, bool dropping, long now, CancellationToken token)
    {
        if (bytes.IsEmpty || dropping || _client.TakesNothingMore)
        {
            return ValueTask.CompletedTask;
        }

        BeginPending(ref _client, now);
        var write = inner.WriteAsync(bytes, token);
        if (write.IsCompletedSuccessfully)
        {
            write.GetAwaiter().GetResult();
            EndPending(ref _client, now);
            return ValueTask.CompletedTask;
        }

        return AwaitWriteAsync(write);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask AwaitWriteAsync(ValueTask write)
    {
        await write;
        EndPending(ref _client);
    }

    // Sends what the heartbeat has for the client (a Close, else a ping) if the stream toward the
    // client is at a frame boundary. Must hold the write lock.
    private async ValueTask SendFramesForClientAsync(Stream inner, CancellationToken token)
    {
        if (!_b2c.AtBoundary || !HasFrameFor(Leg.Client) || _client.TakesNothingMore)
        {
            return;
        }

        // Rented for the write only: an idle connection holds no buffer between pings.
        var frame = ArrayPool<byte>.Shared.Rent(FrameHeader.MaxControlFrame);
        try
        {
            var isClose = _client.CloseQueued;
            var now = _time.GetTimestamp();
            var length = isClose ? WriteQueuedClose(Leg.Client, frame) : WritePing(Leg.Client, frame, now);
            await SendToClientAsync(inner, frame.AsMemory(0, length), dropping: false, now, token);
            if (isClose)
            {
                OnCloseDelivered(Leg.Client);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(frame);
        }
    }

    /// <summary>Sends a pending frame toward the client now, unless YARP is writing (it will, at its next boundary).</summary>
    private async Task TrySendForClientAsync()
    {
        if (_inner is not { } inner || !_writeLock.Wait(0))
        {
            return;
        }

        try
        {
            await SendFramesForClientAsync(inner, _writeCts?.Token ?? CancellationToken.None);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            // The client connection is failing; YARP's own loop reports it.
        }
        finally
        {
            _writeLock.Release();
        }
    }

    // YARP stops reading the client once the backend's side ended (EOF or reset) without a closing
    // handshake; the client would only see its connection drop (1006). Tell it with Close 1001.
    private async ValueTask TellClientBackendWentAwayAsync(Stream inner)
    {
        lock (_gate)
        {
            if (_policy.Mode != Configuration.HeartbeatMode.Enforce || _passThrough || _terminating || _backend.CloseReceived || _client.TakesNothingMore)
            {
                return;
            }

            // The reason stays open: YARP's error feature tells an orderly end (backend_close) from a
            // failure (backend_error) when the request returns.
            _terminating = true;
            QueueCloseLocked(ref _client, CloseCodes.GoingAway, "backend went away");
        }

        Log.BackendWentAway(_logger, RouteId, ClusterId, Destination, ClientAddress);

        // Both bounds on the connection's clock, like every other deadline of the relay's.
        using (var giveUp = new CancellationTokenSource(TimeSpan.FromMilliseconds(200), _time))
        {
            try
            {
                await _writeLock.WaitAsync(giveUp.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }

        try
        {
            await SendFramesForClientAsync(inner, CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromMilliseconds(500), _time);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException or TimeoutException)
        {
            // The client is failing too; nothing more to tell it.
        }
        finally
        {
            _writeLock.Release();
        }
    }
}
