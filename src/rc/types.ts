/**
 * Response schemas for the RingCentral calls faxbridge makes, written from the
 * public OpenAPI spec (TokenInfo, FaxResponse, GetMessageInfoResponse,
 * GetMessageList, GetMessageSyncResponse, SubscriptionInfo, WsTokenResponse,
 * ListFaxCoverPagesResponse, ApiErrorResponseModel / OauthInvalidRequest).
 *
 * Every JSON response is validated with these at the edge. Objects are loose
 * (RingCentral adds fields over time); only the fields we rely on are required.
 * int64 ids become strings.
 */
import { z } from "zod";

/** An int64 id: JSON gives a number (or a string when we pre-quoted a big one); we keep strings. */
export const idSchema = z.union([z.string().min(1), z.number().int().nonnegative()]).transform((v) => String(v));

export const messageStatusSchema = z.string(); // Queued | Sent | Delivered | DeliveryFailed | SendingFailed | Received (open set)
export type MessageStatus = "Queued" | "Sent" | "Delivered" | "DeliveryFailed" | "SendingFailed" | "Received";

// ---------------------------------------------------------------- OAuth

export const tokenInfoSchema = z.looseObject({
  access_token: z.string().min(1),
  expires_in: z.number().positive(),
  token_type: z.string().optional(),
  scope: z.string().optional(),
  session_id: z.string().optional(),
  refresh_token: z.string().min(1).optional(),
  refresh_token_expires_in: z.number().positive().optional(),
  owner_id: z.union([z.string(), z.number()]).transform((v) => String(v)).optional(),
});
export type TokenInfo = z.infer<typeof tokenInfoSchema>;

export const wsTokenSchema = z
  .looseObject({
    ws_access_token: z.string().min(1),
    uri: z.string().min(1),
    expires_in: z.number().nonnegative(),
  })
  .transform((v) => ({ wsAccessToken: v.ws_access_token, uri: v.uri, expiresIn: v.expires_in }));
export type WsToken = z.output<typeof wsTokenSchema>;

// ---------------------------------------------------------------- messages

export const callerFromSchema = z.looseObject({
  phoneNumber: z.string().optional(),
  extensionNumber: z.string().optional(),
  extensionId: z.union([z.string(), z.number()]).transform((v) => String(v)).optional(),
  name: z.string().optional(),
  location: z.string().optional(),
});

export const callerToSchema = z.looseObject({
  phoneNumber: z.string().optional(),
  extensionNumber: z.string().optional(),
  extensionId: z.union([z.string(), z.number()]).transform((v) => String(v)).optional(),
  name: z.string().optional(),
  location: z.string().optional(),
  recipientId: z.union([z.string(), z.number()]).transform((v) => String(v)).optional(),
  messageStatus: messageStatusSchema.optional(),
  faxErrorCode: z.string().optional(),
});

export const attachmentSchema = z.looseObject({
  id: idSchema,
  uri: z.string().min(1),
  type: z.string().optional(),
  contentType: z.string().optional(),
  /** MessageAttachmentInfo has `fileName`; FaxResponse attachments have `filename`. */
  fileName: z.string().optional(),
  filename: z.string().optional(),
  size: z.number().int().nonnegative().optional(),
});
export type MessageAttachment = z.output<typeof attachmentSchema>;

/**
 * GetMessageInfoResponse. ISync reports deleted/purged messages with only `id`
 * and `availability`, so everything but `id` is optional.
 */
export const messageInfoSchema = z.looseObject({
  id: idSchema,
  uri: z.string().optional(),
  extensionId: z.union([z.string(), z.number()]).transform((v) => String(v)).optional(),
  type: z.string().optional(),
  direction: z.enum(["Inbound", "Outbound"]).optional(),
  availability: z.string().optional(),
  readStatus: z.string().optional(),
  messageStatus: messageStatusSchema.optional(),
  creationTime: z.string().optional(),
  lastModifiedTime: z.string().optional(),
  from: callerFromSchema.optional(),
  to: z.array(callerToSchema).optional(),
  attachments: z.array(attachmentSchema).optional(),
  subject: z.string().optional(),
  faxPageCount: z.number().int().optional(),
  faxResolution: z.string().optional(),
  coverIndex: z.number().int().optional(),
  coverPageText: z.string().optional(),
});
export type MessageInfo = z.output<typeof messageInfoSchema>;

/** FaxResponse (POST …/fax): the same shape as a message-store record for what we use. */
export const faxResponseSchema = messageInfoSchema.extend({
  messageStatus: messageStatusSchema,
});
export type FaxResponse = z.output<typeof faxResponseSchema>;

const navUriSchema = z.looseObject({ uri: z.string().min(1) });

export const messageListSchema = z.looseObject({
  uri: z.string().optional(),
  records: z.array(messageInfoSchema),
  navigation: z
    .looseObject({
      firstPage: navUriSchema.optional(),
      nextPage: navUriSchema.optional(),
      previousPage: navUriSchema.optional(),
      lastPage: navUriSchema.optional(),
    })
    .optional(),
  paging: z
    .looseObject({
      page: z.number().int().optional(),
      perPage: z.number().int().optional(),
      totalPages: z.number().int().optional(),
      totalElements: z.number().int().optional(),
    })
    .optional(),
});
export type MessageList = z.output<typeof messageListSchema>;

export const messageSyncSchema = z.looseObject({
  uri: z.string().optional(),
  records: z.array(messageInfoSchema),
  syncInfo: z.looseObject({
    syncType: z.enum(["FSync", "ISync"]),
    syncToken: z.string().min(1),
    syncTime: z.string().optional(),
    olderRecordsExist: z.boolean().optional(),
  }),
});
export type MessageSyncResult = z.output<typeof messageSyncSchema>;

// ---------------------------------------------------------------- cover pages

export const coverPageListSchema = z.looseObject({
  records: z.array(
    z.looseObject({
      id: z.union([z.string(), z.number()]).transform((v) => String(v)),
      name: z.string(),
    }),
  ),
  navigation: z.looseObject({ nextPage: navUriSchema.optional() }).optional(),
});

// ---------------------------------------------------------------- subscriptions

export const subscriptionInfoSchema = z.looseObject({
  id: z.string().min(1),
  uri: z.string().optional(),
  eventFilters: z.array(z.string()),
  disabledFilters: z
    .array(z.looseObject({ filter: z.string(), reason: z.string(), message: z.string().optional() }))
    .optional(),
  expirationTime: z.string().optional(),
  expiresIn: z.number().int().optional(),
  status: z.string(),
  creationTime: z.string().optional(),
  deliveryMode: z
    .looseObject({
      transportType: z.string().optional(),
      address: z.string().optional(),
      encryption: z.boolean().optional(),
    })
    .optional(),
  blacklistedData: z.looseObject({ blacklistedAt: z.string().optional(), reason: z.string().optional() }).optional(),
});
export type SubscriptionInfo = z.output<typeof subscriptionInfoSchema>;

// ---------------------------------------------------------------- errors

/** ApiErrorResponseModel, ParameterizedErrorResponseModel and OauthInvalidRequest, merged and loose. */
export const errorBodySchema = z.looseObject({
  errors: z
    .array(
      z.looseObject({
        errorCode: z.string().optional(),
        message: z.string().optional(),
        parameterName: z.string().optional(),
      }),
    )
    .optional(),
  errorCode: z.string().optional(),
  message: z.string().optional(),
  parameterName: z.string().optional(),
  error: z.string().optional(),
  error_description: z.string().optional(),
});
export type ErrorBody = z.output<typeof errorBodySchema>;
