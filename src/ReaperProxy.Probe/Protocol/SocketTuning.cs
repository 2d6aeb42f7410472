namespace ReaperProxy.Probe.Protocol;

/// <summary>How a check wants its connection set up.</summary>
internal sealed record SocketTuning
{
    /// <summary>The system's buffers, reads of up to 16 KiB.</summary>
    public static readonly SocketTuning Default = new();

    /// <summary>SO_RCVBUF, set before the SYN (the window scale is fixed then); null: the system's.</summary>
    public int? ReceiveBufferSize { get; init; }

    /// <summary>The most the frame reader takes from the stream at once.</summary>
    public int ReadBufferSize { get; init; } = 16 * 1024;

    /// <summary>Wraps the stream the frames are read from (the slow reader paces it); writes go to the stream itself.</summary>
    public Func<Stream, Stream>? ReadThrough { get; init; }
}
