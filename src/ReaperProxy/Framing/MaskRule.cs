namespace ReaperProxy.Framing;

/// <summary>Which masking a direction's frames must have (RFC 6455 §5.1).</summary>
internal enum MaskRule
{
    /// <summary>Not judged (a scanner that does not know which side it reads).</summary>
    Any,

    /// <summary>Client to server: every frame is masked; a server must fail the connection on an unmasked one.</summary>
    Masked,

    /// <summary>Server to client: no frame is masked; a client must fail the connection on a masked one.</summary>
    Unmasked,
}
